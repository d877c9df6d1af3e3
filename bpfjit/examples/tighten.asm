; A library tightening the sandbox: ptrace refused with EACCES (README: the process model)
.arch x86_64
        ld   [arch]
        jne  #AUDIT_ARCH_X86_64, kill
        ld   [nr]
        jeq  #ptrace, deny
        ret  ALLOW
deny:   ret  ERRNO(EACCES)
kill:   ret  KILL_PROCESS
