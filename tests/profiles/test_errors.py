"""Bad profiles give a ProfileError naming the file and the JSON path (or line); the CLI exits 2."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import bpfjit
from bpfjit.cli import cli
from bpfjit.errors import LoadError, ProfileError
from bpfjit.profiles import compile_profile, libseccomp

pytestmark = pytest.mark.skipif(not libseccomp.available(), reason="libseccomp2 is not installed")

GOOD_CALL = {"names": ["read"], "action": "SCMP_ACT_ALLOW"}

BAD_OCI = [
    ("an unknown action", {"defaultAction": "SCMP_ACT_FOO"}, "$.defaultAction",
     "unknown action 'SCMP_ACT_FOO'"),
    ("an unknown rule action", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        GOOD_CALL, {"names": ["write"], "action": "ALLOW"}]}, "$.syscalls[1].action",
     "unknown action 'ALLOW'"),
    ("an unknown operator", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     "$.syscalls[0].args[0].op", "unknown operator 'SCMP_CMP_XX'"),
    ("an argument index over 5", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "$.syscalls[0].args[0].index", "out of range"),
    ("a negative value", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "$.syscalls[0].args[0].value", "out of range"),
    ("an unknown architecture", {"defaultAction": "SCMP_ACT_ERRNO",
                                 "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]},
     "$.architectures[1]", "unknown architecture 'SCMP_ARCH_VAX'"),
    ("an unknown archMap sub-architecture", {"defaultAction": "SCMP_ACT_ERRNO", "archMap": [
        {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_Z80"]}]},
     "$.archMap[0].subArchitectures[0]", "unknown architecture"),
    ("both architectures and archMap", {"defaultAction": "SCMP_ACT_ERRNO",
                                        "architectures": ["SCMP_ARCH_X86_64"],
                                        "archMap": [{"architecture": "SCMP_ARCH_X86_64"}]},
     "$", "both 'architectures' and 'archMap'"),
    ("both name and names", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"name": "read", "names": ["write"], "action": "SCMP_ACT_ALLOW"}]},
     "$.syscalls[0]", "both 'name' and 'names'"),
    ("a bad minKernel", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]},
     "$.syscalls[0].includes.minKernel", "invalid kernel version"),
    ("an unknown flag", {"defaultAction": "SCMP_ACT_ERRNO", "flags": ["SECCOMP_FILTER_FLAG_X"]},
     "$.flags[0]", "not known to runc"),
    ("a notify default", {"defaultAction": "SCMP_ACT_NOTIFY"}, "$.defaultAction",
     "cannot be used as default"),
    ("syscalls that is not a list", {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {"a": 1}},
     "$.syscalls", "expected a list"),
    ("a top level list", [1, 2], "$", "expected a JSON object"),
]


@pytest.mark.parametrize("what, doc, path, message", BAD_OCI, ids=[f"a profile with {c[0]}"
                                                                   for c in BAD_OCI])
def test_bad_oci_profiles_name_the_file_and_the_json_path(tmp_path, what, doc, path, message):
    file = tmp_path / "bad.json"
    file.write_text(json.dumps(doc))
    with pytest.raises(ProfileError) as info:
        bpfjit.load(str(file), arch="x86_64")
    err = info.value
    assert err.source == str(file) and err.path == path
    assert message in str(err) and str(file) in str(err) and path in str(err)
    assert isinstance(err, LoadError)


def test_bad_json_names_the_line(tmp_path):
    file = tmp_path / "broken.json"
    file.write_text('{\n  "defaultAction": "SCMP_ACT_ERRNO",\n  "syscalls": [\n}\n')
    with pytest.raises(ProfileError) as info:
        bpfjit.load(str(file))
    assert info.value.line == 4 and "bad JSON" in str(info.value) and str(file) in str(info.value)


def test_a_json_file_that_is_not_json_at_all(tmp_path):
    file = tmp_path / "garbage.json"
    file.write_bytes(b"\x00\x01binary")
    with pytest.raises(LoadError):
        bpfjit.load(str(file))


def test_an_oci_config_without_seccomp(tmp_path):
    file = tmp_path / "config.json"
    file.write_text(json.dumps({"ociVersion": "1.0.2", "linux": {"namespaces": []}}))
    with pytest.raises(ProfileError, match=r"\$\.linux\.seccomp.*no seccomp profile"):
        bpfjit.load(str(file))


@pytest.mark.parametrize("fragment, message", [("", "choose one with PATH#THREAD"),
                                               ("#gpu", "no thread category 'gpu'")])
def test_firecracker_thread_must_be_chosen_and_exist(tmp_path, fragment, message):
    file = tmp_path / "fc.json"
    file.write_text(json.dumps({t: {"default_action": "trap", "filter_action": "allow",
                                    "filter": [{"syscall": "read"}]} for t in ("vmm", "api")}))
    with pytest.raises(ProfileError, match=message):
        bpfjit.load(f"{file}{fragment}")


def test_firecracker_bad_operator_names_the_json_path(tmp_path):
    file = tmp_path / "fc.json"
    file.write_text(json.dumps({"vmm": {"default_action": "trap", "filter_action": "allow",
                                        "filter": [{"syscall": "read", "args": [
                                            {"index": 0, "type": "dword", "op": "approx",
                                             "val": 1}]}]}}))
    with pytest.raises(ProfileError) as info:
        bpfjit.load(str(file))
    assert info.value.path == "$.vmm.filter[0].args[0].op"


@pytest.mark.parametrize("text, line, message", [
    ("3\ndenylist\n", 1, "invalid version"),
    ("2\ngreylist\n", 2, "bad seccomp policy style"),
    ("2\ndenylist\nread frobnicate\n", 3, "unrecognized seccomp action 'frobnicate'"),
    ("2\ndenylist\n[vax]\nread\n", 3, "unsupported architecture section"),
    ("2\ndenylist\nread errno 1 [0,1,SCMP_CMP_ABOUT]\n", 3, "unknown operator"),
    ("2\ndenylist\nread errno 1 [7,1,SCMP_CMP_EQ]\n", 3, "out of range"),
    ("2\nallowlist\nread kill\n", 3, "libseccomp refused"),   # the policy's default action
])
def test_bad_lxc_policies_name_the_line(tmp_path, text, line, message):
    file = tmp_path / "bad.seccomp"
    file.write_text(text)
    with pytest.raises(ProfileError, match=message) as info:
        compile_profile(file, format="lxc", arch="x86_64")
    assert info.value.line == line


def test_arches_of_two_byte_orders_cannot_share_a_filter(tmp_path):
    file = tmp_path / "mixed.json"
    file.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_S390X"]}))
    with pytest.raises(ProfileError, match="cannot add s390x to a filter for x86_64.*byte order"):
        compile_profile(file, arch="x86_64")


def test_bad_choices_are_clear():
    from bpfjit.profiles import resolve_caps, resolve_kernel
    with pytest.raises(ProfileError, match="unknown capabilities CAP_FLY"):
        resolve_caps("fly")
    with pytest.raises(ProfileError, match="invalid kernel version"):
        resolve_kernel("latest")
    with pytest.raises(bpfjit.UnknownArchError):
        compile_profile(b'{"defaultAction": "SCMP_ACT_ALLOW"}', arch="vax")


def test_the_cli_exits_2_with_the_json_path(tmp_path):
    file = tmp_path / "bad.json"
    file.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}))
    res = CliRunner().invoke(cli, ["eval", str(file), "read"])
    assert res.exit_code == 2
    assert f"Error: {file}: $.syscalls[0].args[0].op: unknown operator" in res.output
