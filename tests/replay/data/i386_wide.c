/* i386, no libc: pread64 and fallocate with 64-bit arguments passed as register pairs (int $0x80),
   for tests/replay/test_kernel_i386.py. Build: gcc -m32 -nostdlib -static -ffreestanding -fno-pic */
static volatile long sixth;
static long sys6(long nr, long a, long b, long c, long d, long e, long f) {
    sixth = f;
    long ret;
    __asm__ volatile ("push %%ebp\n\tmov %7, %%ebp\n\tint $0x80\n\tpop %%ebp" : "=a"(ret)
                      : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d), "D"(e), "m"(sixth) : "memory");
    return ret;
}
static char buf[64];
void _start(void) {
    sys6(180, 0, (long)buf, 8, 0x3, 0x5, 0);       /* pread64(0, buf, 8, 0x500000003) */
    sys6(324, 0, 0, 0x7, 0x1, 0x9, 0x2);           /* fallocate(0, 0, 0x100000007, 0x200000009) */
    sys6(1, 0, 0, 0, 0, 0, 0);                     /* exit(0) */
    for (;;) ;
}
