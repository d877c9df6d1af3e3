"""How profiles are resolved: caps, kernel version, target arch, runc's rule shapes, flags, warnings.

Expected verdicts come from the profiles' documented meaning (moby
setupSeccomp, runc matchCall, seccompiler, LXC) and are evaluated by the
reference interpreter; none is read back from bpfjit.profiles itself.
"""
from __future__ import annotations

import json
import warnings

import pytest

import bpfjit
from bpfjit.profiles import ProfileWarning, compile_profile, libseccomp
from corpora import TESTS

PROFILES = TESTS / "corpus" / "real" / "profiles"
DOCKER = PROFILES / "docker-default.profile.json"
ALLOW, EPERM, ENOSYS = 0x7FFF0000, 0x00050001, 0x00050026
CLONE_NEWUSER = 0x10000000

pytestmark = pytest.mark.skipif(not libseccomp.available(), reason="libseccomp2 is not installed")


def verdict(program, arch, name, *args):
    return bpfjit.compile(program, backend="reference", arch=arch).evaluate(name, list(args))


def profile(tmp_path, doc, name="p.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("caps, expected", [("docker", EPERM), ("all", ALLOW),
                                            ("CAP_SYS_ADMIN", ALLOW), ("sys_admin,kill", ALLOW),
                                            ("none", EPERM)])
def test_caps_decide_whether_clone_may_create_a_user_namespace(caps, expected):
    prog = compile_profile(DOCKER, arch="x86_64", caps=caps, kernel="6.1").program
    assert verdict(prog, "x86_64", "clone", CLONE_NEWUSER) == expected
    assert verdict(prog, "x86_64", "clone", 0x11) == ALLOW        # plain fork-like clone


def test_clone3_without_sys_admin_is_enosys_and_with_it_allowed():
    docker = compile_profile(DOCKER, arch="x86_64", caps="docker", kernel="6.1").program
    admin = compile_profile(DOCKER, arch="x86_64", caps="all", kernel="6.1").program
    assert verdict(docker, "x86_64", "clone3") == ENOSYS
    assert verdict(admin, "x86_64", "clone3") == ALLOW


@pytest.mark.parametrize("kernel, expected", [("4.7", EPERM), ("4.8", ALLOW), ("6.18.0-1-amd64",
                                                                                 ALLOW)])
def test_min_kernel_4_8_gates_ptrace(kernel, expected):
    prog = compile_profile(DOCKER, arch="x86_64", kernel=kernel).program
    assert verdict(prog, "x86_64", "ptrace") == expected


def test_the_host_kernel_is_the_default(monkeypatch):
    import os
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, "4.4.0-old", real.version, real.machine))
    monkeypatch.setattr(os, "uname", lambda: fake)
    cp = compile_profile(DOCKER, arch="x86_64")
    assert cp.kernel == (4, 4)
    assert verdict(cp.program, "x86_64", "ptrace") == EPERM


def test_arch_includes_follow_the_target():
    x86_64 = compile_profile(DOCKER, arch="x86_64", kernel="6.1").program
    arm64 = compile_profile(DOCKER, arch="aarch64", kernel="6.1").program
    assert verdict(x86_64, "x86_64", "arch_prctl") == ALLOW
    assert verdict(x86_64, "x86", "modify_ldt") == ALLOW
    assert verdict(arm64, "arm", "arm_fadvise64_64") == ALLOW
    # the archMap sub-architectures are in the filter, others hit the bad-arch action (KILL_THREAD)
    assert verdict(x86_64, "x32", "read") == ALLOW
    assert verdict(x86_64, "aarch64", "read") == 0
    assert verdict(arm64, "x86_64", "read") == 0


def test_docker_defaults_are_documented_values():
    cp = compile_profile(DOCKER, arch="x86_64")
    assert "CAP_NET_RAW" in cp.caps and "CAP_SYS_ADMIN" not in cp.caps and len(cp.caps) == 14
    assert cp.libseccomp == "2.5.4"
    assert any("mseal" in w for w in cp.warnings)     # newer than libseccomp 2.5.4: skipped


def test_an_oci_config_json_is_read_through_linux_seccomp(tmp_path):
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
    path = profile(tmp_path, {"ociVersion": "1.0.2", "linux": {"seccomp": seccomp}}, "config.json")
    prog = bpfjit.load(str(path), arch="x86_64")
    assert verdict(prog, "x86_64", "mount") == 0x0005000D
    assert verdict(prog, "x86_64", "read") == ALLOW


def test_two_conditions_on_one_argument_become_two_rules_as_in_runc(tmp_path):
    # runc: same-argument conditions are split into separate rules, i.e. OR-ed
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"},
                                  {"index": 0, "value": 0x20000, "op": "SCMP_CMP_EQ"}]},
                        {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
                         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                  {"index": 1, "value": 2, "op": "SCMP_CMP_EQ"}]}]}
    prog = compile_profile(profile(tmp_path, doc), arch="x86_64").program
    assert verdict(prog, "x86_64", "personality", 8) == ALLOW
    assert verdict(prog, "x86_64", "personality", 0x20000) == ALLOW
    assert verdict(prog, "x86_64", "personality", 9) == EPERM
    # different arguments: one rule, AND-ed
    assert verdict(prog, "x86_64", "socket", 1, 2) == ALLOW
    assert verdict(prog, "x86_64", "socket", 1, 3) == EPERM


def test_masked_eq_value_is_the_mask_and_value_two_the_datum(tmp_path):
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["umount2"], "action": "SCMP_ACT_ERRNO",
                         "args": [{"index": 1, "value": 1, "valueTwo": 1,
                                   "op": "SCMP_CMP_MASKED_EQ"}]}]}
    prog = compile_profile(profile(tmp_path, doc), arch="x86_64").program
    assert verdict(prog, "x86_64", "umount2", 0, 3) == EPERM
    assert verdict(prog, "x86_64", "umount2", 0, 2) == ALLOW


def test_actions_map_as_runc_maps_them(tmp_path):
    doc = {"defaultAction": "SCMP_ACT_KILL", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_TRACE"},
                        {"names": ["write"], "action": "SCMP_ACT_KILL_PROCESS"},
                        {"names": ["close"], "action": "SCMP_ACT_LOG"},
                        {"names": ["open"], "action": "SCMP_ACT_TRAP"},
                        {"names": ["getpid"], "action": "SCMP_ACT_NOTIFY"},
                        {"names": ["exit"], "action": "SCMP_ACT_KILL"},
                        {"names": ["not_a_syscall_at_all"], "action": "SCMP_ACT_ALLOW"}]}
    cp = compile_profile(profile(tmp_path, doc), arch="x86_64")
    prog = cp.program
    assert verdict(prog, "x86_64", "read") == 0x7FF00001          # TRACE(EPERM)
    assert verdict(prog, "x86_64", "write") == 0x80000000
    assert verdict(prog, "x86_64", "close") == 0x7FFC0000
    assert verdict(prog, "x86_64", "open") == 0x00030000
    assert verdict(prog, "x86_64", "getpid") == 0x7FC00000
    assert verdict(prog, "x86_64", "exit") == 0                    # same as default: skipped
    assert verdict(prog, "x86_64", "brk") == 0
    assert any("not_a_syscall_at_all" in w for w in cp.warnings)
    assert any("SCMP_ACT_NOTIFY" in w for w in cp.warnings)


def test_flags_and_listener_path_are_reported(tmp_path):
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG",
                                                        "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
           "listenerPath": "/run/agent.sock",
           "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_NOTIFY"}]}
    cp = compile_profile(profile(tmp_path, doc), arch="x86_64")
    # runc filterFlags: the profile's flags, plus NEW_LISTENER when a rule notifies
    assert cp.flags == ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                        "SECCOMP_FILTER_FLAG_NEW_LISTENER"]
    assert any("listenerPath" in w and "not applied" in w for w in cp.warnings)


def test_load_issues_the_warnings_as_profile_warnings():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prog = bpfjit.load(str(DOCKER), profile_arch="x86_64", kernel="6.1")
    assert len(prog) == 1001
    assert [w for w in caught if issubclass(w.category, ProfileWarning) and "mseal" in
            str(w.message)]


@pytest.mark.parametrize("arch, target", [("x86", "x86_64"), ("x32", "x86_64"),
                                          ("arm", "aarch64"), ("s390x", "s390x")])
def test_load_targets_the_main_arch_of_the_calling_abi(arch, target):
    from bpfjit.profiles import profile_target
    assert profile_target(arch, None) == target
    assert profile_target(arch, "riscv64") == "riscv64"


def test_firecracker_threads_are_chosen_by_path_fragment():
    fc = PROFILES / "firecracker.x86_64.profile.json"
    api = bpfjit.load(f"{fc}#api")
    vcpu = bpfjit.load(str(fc), thread="vcpu")
    trap = 0x00030000
    # ioctl(fd, FIONBIO) is allowed to the api thread; KVM_RUN (0xae80) only to vcpu threads
    assert verdict(api, "x86_64", "ioctl", 3, 0x5421) == ALLOW
    assert verdict(api, "x86_64", "ioctl", 3, 0x5401) == trap
    assert verdict(api, "x86_64", "ioctl", 3, 0xAE80) == trap
    assert verdict(vcpu, "x86_64", "ioctl", 3, 0xAE80) == ALLOW
    # dword: only the low 32 bits are compared (MASKED_EQ 0xffffffff)
    assert verdict(vcpu, "x86_64", "ioctl", 3, (1 << 32) | 0xAE80) == ALLOW


def test_lxc_denylist_and_reject_force_umount():
    prog = bpfjit.load(str(PROFILES / "lxc-common.profile.seccomp"), arch="x86_64")
    assert verdict(prog, "x86_64", "kexec_load") == EPERM
    assert verdict(prog, "x86", "init_module") == EPERM
    assert verdict(prog, "x32", "finit_module") == EPERM
    assert verdict(prog, "x86_64", "umount2", 0, 1) == 0x0005000D      # MNT_FORCE: EACCES
    assert verdict(prog, "x86_64", "umount2", 0, 2) == ALLOW
    assert verdict(prog, "x86_64", "read") == ALLOW


def test_lxc_allowlist_with_arch_sections_and_argument_tests(tmp_path):
    path = tmp_path / "p.seccomp"
    path.write_text("2\nallowlist errno 38\n[x86_64]\nread\nwrite allow\n"
                    "personality allow [0,8,SCMP_CMP_EQ]\n[arm64]\nbrk\n[all]\nclose\n")
    prog = bpfjit.load(str(path), arch="x86_64")
    assert verdict(prog, "x86_64", "read") == ALLOW
    assert verdict(prog, "x86_64", "personality", 8) == ALLOW
    assert verdict(prog, "x86_64", "personality", 9) == ENOSYS
    assert verdict(prog, "x86_64", "brk") == ENOSYS               # [arm64] skipped on x86_64
    assert verdict(prog, "x86_64", "close") == ALLOW


@pytest.mark.parametrize("file, fmt", [("docker-default.profile.json", "oci"),
                                       ("podman-default.profile.json", "oci"),
                                       ("firecracker.x86_64.profile.json", "firecracker"),
                                       ("lxc-common.profile.seccomp", "lxc")])
def test_profile_formats_are_detected_from_their_bytes(file, fmt):
    from bpfjit.formats import detect_format
    assert detect_format((PROFILES / file).read_bytes()) == fmt


def test_c_arrays_and_asm_are_not_taken_for_profiles():
    from bpfjit.formats import detect_format
    assert detect_format(b"{ 0x06, 0, 0, 0x7fff0000 },\n") == "c"
    assert detect_format(b"ret #0x7fff0000\n") == "asm"
    assert detect_format(b"2\n") == "asm"


def test_keys_match_case_insensitively_as_in_go(tmp_path):
    doc = {"DefaultAction": "SCMP_ACT_ALLOW", "SYSCALLS": [
        {"Names": ["mount"], "action": "SCMP_ACT_ERRNO", "ErrnoRet": 13}], "Comment": "x"}
    cp = compile_profile(profile(tmp_path, doc), arch="x86_64")
    assert verdict(cp.program, "x86_64", "mount") == 0x0005000D
    assert any("$.Comment: unknown key ignored" in w for w in cp.warnings)
