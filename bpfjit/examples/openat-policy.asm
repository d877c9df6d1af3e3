; openat-policy.asm: a small hand-written seccomp filter in bpfjit's assembler
; (the kernel's bpf_asm syntax plus seccomp names; see bpfjit/formats/asm.py).
;
;   bpfjit asm bpfjit/examples/openat-policy.asm -o openat-policy.bpf
;   bpfjit eval bpfjit/examples/openat-policy.asm openat 3 0 0x241    # ERRNO(13)
;
; Policy for x86_64 tasks:
;   - another architecture, or the x32 ABI: kill the process;
;   - execve, execveat: kill the process;
;   - read, write, close, fstat, exit_group: allowed;
;   - openat(dirfd, path, flags, mode): allowed for reading only. flags is
;     args[2], 64 bits in seccomp_data: its high half must be 0 (else EINVAL),
;     its low half must have none of O_WRONLY|O_RDWR|O_CREAT|O_TRUNC
;     (0x1|0x2|0x40|0x200) set (else EACCES);
;   - anything else: EPERM.

.arch x86_64                                ; layout and syscall numbers for the names below

        ld   [arch]
        jne  #AUDIT_ARCH_X86_64, kill       ; jump to kill when arch != x86_64
        ld   [nr]
        jge  #X32_SYSCALL_BIT, kill         ; x32 numbers carry bit 30
        jeq  #openat, openat
        jeq  #execve, kill
        jeq  #execveat, kill
        jeq  #read, allow
        jeq  #write, allow
        jeq  #close, allow
        jeq  #fstat, allow
        jeq  #exit_group, allow
        ret  ERRNO(EPERM)

openat: ld   [args[2].hi]                   ; flags, high 32 bits
        jne  #0, einval
        ld   [args[2].lo]                   ; flags, low 32 bits
        jset #0x243, eacces                 ; O_WRONLY|O_RDWR|O_CREAT|O_TRUNC
allow:  ret  ALLOW
eacces: ret  ERRNO(EACCES)
einval: ret  ERRNO(EINVAL)
kill:   ret  KILL_PROCESS
