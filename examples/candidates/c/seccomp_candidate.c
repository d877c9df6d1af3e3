/*
 * A seccomp classic-BPF evaluator in C, speaking the bpfjit candidate protocol, version 1.
 *
 *     make                      # or: cc -O2 -o seccomp_candidate seccomp_candidate.c
 *     bpfjit fuzz --candidate-cmd ./seccomp_candidate --seconds 30 --out repro/
 *
 * The protocol (bpfjit/testing/protocol.py has the full text): binary frames on stdin/stdout,
 * all integers little-endian.
 *
 *   handshake in:   "BPFJ" u32 version u32 audit_arch u32 flags u32 name_len name
 *   handshake out:  "BPFJ" u32 version u32 capabilities
 *   request:        u32 op (1 EVALUATE, 2 CHECK) u32 nprograms {u32 nbytes, bytes}...
 *                   EVALUATE: u32 nrecords, nrecords x 64-byte struct seccomp_data (logical values)
 *   response:       u32 0 (ACCEPT) [EVALUATE: nrecords x u32]  |  u32 1 (REJECT) u32 len reason
 *
 * This candidate declares CAP_VERDICTS_ONLY: it does not check programs, so the fuzzer sends it
 * valid programs only, and it evaluates each record the way the kernel does (kernel/seccomp.c
 * populate_seccomp_data, net/core/filter.c): 32-bit A and X, 16 scratch cells, word loads in the
 * layout's byte order (bit 0x40000000 of AUDIT_ARCH: little-endian), ld len = 64, a division by
 * X == 0 returns 0, shifts by X use its low 5 bits. Stack runs (flag 1) are not supported.
 *
 * For bpfjit's own tests (the fuzzer must survive a bad candidate), --fault hang:NR makes it loop
 * forever and --fault crash:NR makes it dereference NULL on a record whose nr is NR; --bug
 * signed-jgt plants a wrong jgt (signed compare), for the fuzzer to find.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VERSION 1
#define CAP_VERDICTS_ONLY 2
#define OP_EVALUATE 1
#define OP_CHECK 2

static int little_endian = 1;
static int have_hang, fault_hang, have_crash, fault_crash, bug_signed_jgt;

static int read_all(void *buf, size_t n)
{
    return n == 0 || fread(buf, 1, n, stdin) == n;
}

static uint32_t get32(const uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

static void put32(uint32_t v)
{
    uint8_t b[4] = {v, v >> 8, v >> 16, v >> 24};
    fwrite(b, 1, 4, stdout);
}

static void die(const char *why)
{
    fprintf(stderr, "seccomp_candidate: %s\n", why);
    exit(3);
}

/* The 64-byte seccomp_data image the filter sees, in the layout's byte order: the record
 * arrives little-endian; on a big-endian layout every field is stored most significant byte
 * first (nr and arch: 4 bytes, instruction_pointer and args: 8). */
static void image(const uint8_t *rec, uint8_t out[64])
{
    int i, b;
    if (little_endian) {
        memcpy(out, rec, 64);
        return;
    }
    for (i = 0; i < 2; i++)
        for (b = 0; b < 4; b++)
            out[4 * i + b] = rec[4 * i + 3 - b];
    for (i = 0; i < 7; i++)
        for (b = 0; b < 8; b++)
            out[8 + 8 * i + b] = rec[8 + 8 * i + 7 - b];
}

static uint32_t word(const uint8_t *img, uint32_t k)
{
    const uint8_t *p = img + k;
    if (little_endian)
        return get32(p);
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static uint32_t run(const uint8_t *prog, uint32_t ninsns, const uint8_t *rec)
{
    uint8_t img[64];
    uint32_t A = 0, X = 0, M[16] = {0}, pc = 0;
    image(rec, img);
    if (have_hang && (int32_t)get32(rec) == fault_hang)
        for (;;)
            ;
    if (have_crash && (int32_t)get32(rec) == fault_crash)
        *(volatile int *)0 = 1;
    while (pc < ninsns) {
        const uint8_t *in = prog + 8 * pc++;
        uint16_t code = in[0] | in[1] << 8;
        uint8_t jt = in[2], jf = in[3];
        uint32_t k = get32(in + 4);
        uint32_t src = (code & 0x08) ? X : k;
        switch (code) {
        case 0x20: A = word(img, k); break;                     /* ld [k] */
        case 0x80: A = 64; break;                               /* ld len */
        case 0x81: X = 64; break;                               /* ldx len */
        case 0x00: A = k; break;                                /* ld #k */
        case 0x01: X = k; break;                                /* ldx #k */
        case 0x60: A = M[k & 15]; break;                        /* ld M[k] */
        case 0x61: X = M[k & 15]; break;                        /* ldx M[k] */
        case 0x02: M[k & 15] = A; break;                        /* st */
        case 0x03: M[k & 15] = X; break;                        /* stx */
        case 0x04: case 0x0c: A += src; break;
        case 0x14: case 0x1c: A -= src; break;
        case 0x24: case 0x2c: A *= src; break;
        case 0x34: case 0x3c:
            if (src == 0)
                return 0;
            A /= src;
            break;
        case 0x44: case 0x4c: A |= src; break;
        case 0x54: case 0x5c: A &= src; break;
        case 0x64: case 0x6c: A <<= (src & 31); break;
        case 0x74: case 0x7c: A >>= (src & 31); break;
        case 0xa4: case 0xac: A ^= src; break;
        case 0x84: A = -A; break;                               /* neg */
        case 0x05: pc += k; break;                              /* ja */
        case 0x15: case 0x1d: pc += (A == src) ? jt : jf; break;
        case 0x25: case 0x2d:
            if (bug_signed_jgt)
                pc += ((int32_t)A > (int32_t)src) ? jt : jf;
            else
                pc += (A > src) ? jt : jf;
            break;
        case 0x35: case 0x3d: pc += (A >= src) ? jt : jf; break;
        case 0x45: case 0x4d: pc += (A & src) ? jt : jf; break;
        case 0x06: return k;                                    /* ret #k */
        case 0x16: return A;                                    /* ret a */
        case 0x07: X = A; break;                                /* tax */
        case 0x87: A = X; break;                                /* txa */
        default:
            fprintf(stderr, "seccomp_candidate: opcode %#x at %u\n", code, pc - 1);
            exit(4);
        }
    }
    die("ran off the end of the program");
    return 0;
}

int main(int argc, char **argv)
{
    uint8_t head[20];
    char name[256];
    uint32_t name_len;
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--fault") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strncmp(f, "hang:", 5)) {
                have_hang = 1;
                fault_hang = atoi(f + 5);
            } else if (!strncmp(f, "crash:", 6)) {
                have_crash = 1;
                fault_crash = atoi(f + 6);
            }
        } else if (!strcmp(argv[i], "--bug") && i + 1 < argc && !strcmp(argv[i + 1], "signed-jgt")) {
            bug_signed_jgt = 1;
            i++;
        } else {
            fprintf(stderr, "usage: %s [--fault hang:NR|crash:NR] [--bug signed-jgt]\n", argv[0]);
            return 2;
        }
    }
    if (!read_all(head, 20) || memcmp(head, "BPFJ", 4))
        die("no handshake");
    if (get32(head + 4) != VERSION)
        die("unsupported protocol version");
    little_endian = (get32(head + 8) & 0x40000000) != 0;
    if (get32(head + 12) & 1)
        die("stack runs are not supported");
    name_len = get32(head + 16);
    if (name_len >= sizeof name || !read_all(name, name_len))
        die("bad layout name");
    fwrite("BPFJ", 1, 4, stdout);
    put32(VERSION);
    put32(CAP_VERDICTS_ONLY);
    fflush(stdout);

    for (;;) {
        uint8_t hdr[8], *prog, *recs;
        uint32_t op, nprog, nbytes, nrec, r;
        if (!read_all(hdr, 8))
            return 0;                                   /* stdin closed: the run is over */
        op = get32(hdr);
        nprog = get32(hdr + 4);
        if (nprog != 1 || !read_all(hdr, 4))
            die("expected one program");
        nbytes = get32(hdr);
        prog = malloc(nbytes ? nbytes : 1);
        if (!prog || !read_all(prog, nbytes))
            die("truncated program");
        if (op == OP_CHECK) {                           /* not asked: we declare verdicts-only */
            put32(0);
        } else if (op == OP_EVALUATE) {
            if (!read_all(hdr, 4))
                die("truncated request");
            nrec = get32(hdr);
            recs = malloc(64 * (size_t)nrec + 1);
            if (!recs || !read_all(recs, 64 * (size_t)nrec))
                die("truncated records");
            put32(0);
            for (r = 0; r < nrec; r++)
                put32(run(prog, nbytes / 8, recs + 64 * r));
            free(recs);
        } else {
            die("unknown op");
        }
        fflush(stdout);
        free(prog);
    }
}
