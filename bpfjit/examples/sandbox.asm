; A sandbox's filter: ptrace refused with EPERM, everything else allowed (README: the process model)
.arch x86_64
        ld   [arch]
        jne  #AUDIT_ARCH_X86_64, kill
        ld   [nr]
        jeq  #ptrace, deny
        ret  ALLOW
deny:   ret  ERRNO(EPERM)
kill:   ret  KILL_PROCESS
