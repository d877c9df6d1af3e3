/*
 * Real peers: classic-BPF evaluators nobody here wrote, behind the bpfjit candidate protocol v1.
 *
 *   --engine pcap        libpcap's bpf_validate() + bpf_filter()        (libpcap0.8-dev)
 *   --engine dpdk        DPDK's rte_bpf_convert() + rte_bpf_load() + the eBPF interpreter,
 *                        rte_bpf_exec()                                  (librte-bpf23)
 *   --engine dpdk-jit    the same program through DPDK's x86-64 JIT (rte_bpf_get_jit())
 *   --engine dpdk-both   both DPDK engines on every record; a difference between them aborts
 *                        the process with both values on stderr (bpfjit reports it as a crash,
 *                        with the record)
 *
 * bpfjit builds it on first use into its per-user cache (bpfjit/testing/peers.py, used by
 * `bpfjit fuzz --peer dpdk-jit`; `python3 -m bpfjit.testing.peers dpdk-jit` prints the command
 * line); by hand:
 *
 *   cc -O2 -DWITH_DPDK -o peer_candidate peer_candidate.c \
 *      -l:librte_bpf.so.23 -l:librte_eal.so.23 -lpcap
 *
 * These are *packet* filters. The candidate declares CAP_VERDICTS_ONLY, so the fuzzer sends it
 * only programs Linux installs as seccomp filters; on those the packet view below makes their
 * answers equal to the kernel's, and every difference is real. The packet view of a record:
 *
 *   - the 64-byte struct seccomp_data image of the layout named in the handshake, each 32-bit
 *     word w stored big-endian: a packet filter's `ld [k]` reads network byte order, so it
 *     sees exactly the value the kernel's seccomp `ld [k]` sees (on a big-endian layout the
 *     image is already in that order);
 *   - the packet is 64 bytes long: `ld len` / `ldx len` = 64 (libpcap: wirelen = buflen = 64;
 *     DPDK: mbuf pkt_len = data_len = 64), which is what seccomp's `ld len` rewrite gives.
 *
 * Intended differences of a packet filter from seccomp (outside the programs the fuzzer sends;
 * see the peers section of the README for the list and what each peer does):
 *   - loads outside the packet, and misaligned `ld [k]`: seccomp refuses the program; a packet
 *     filter accepts it and returns 0 when the load runs past the end (libpcap, DPDK);
 *   - `ldh`/`ldb`, `ld [x + k]` (BPF_IND) and `ldxb 4*([k]&0xf)` (BPF_MSH): packet-only loads;
 *   - negative `k` (SKF_AD_OFF ancillary data): DPDK's rte_bpf_convert refuses most of them;
 *   - `ret` returns 32 bits everywhere; DPDK's exec returns a uint64_t (its upper half is
 *     checked to be 0 here);
 *   - division by X == 0 returns 0 from the filter in all three, as in Linux.
 * What is not intended (a DPDK refusal of a valid program, a value that differs) is answered
 * as it is: a REJECT with DPDK's own log line as the reason, or the value DPDK computed.
 *
 * DPDK needs its EAL for rte_bpf_convert() (it allocates the eBPF program with rte_zmalloc(),
 * which fails with ENOMEM before rte_eal_init()); it is started without hugepages, PCI,
 * telemetry or shared files, on the first CPU this process may run on.
 *
 * DPDK's eBPF validator refuses unreachable instructions, which Linux accepts: before a DPDK
 * engine sees a program, its unreachable instructions are dropped and the jumps fixed (this
 * cannot change what it returns); --keep-dead-code hands DPDK the program as it is. Likewise
 * rte_bpf_convert copies k into the eBPF imm of X-form ALU and jump instructions and of `neg`,
 * where Linux ignores it, and the validator refuses a nonzero imm there: those k are zeroed
 * first (--keep-unused-k keeps them).
 *
 * --plant jge-for-jgt   (for bpfjit's own tests) turns every jgt into jge before handing the
 *                       program to the peer: a planted semantic difference the fuzzer must find.
 */
#define _GNU_SOURCE
#include <sys/types.h>
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pcap/bpf.h>

#define VERSION 1
#define CAP_VERDICTS_ONLY 2
#define OP_EVALUATE 1
#define OP_CHECK 2
#define PACKET_LEN 64

#include "rte_bpf_abi.h"     /* DPDK's ABI (used WITH_DPDK only) and the adaptations */

#ifdef WITH_DPDK
static struct fake_mbuf mbuf;
static FILE *dpdk_log;
#endif

enum engine { PCAP, DPDK_INTERP, DPDK_JIT, DPDK_BOTH };
static enum engine engine = PCAP;
static int little_endian = 1, plant_jge, keep_dead_code, keep_unused_k;
static uint8_t packet[PACKET_LEN] __attribute__((aligned(64)));

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
    fprintf(stderr, "peer_candidate: %s\n", why);
    exit(3);
}

static void reject(const char *why)
{
    size_t n = strlen(why);
    put32(1);
    put32(n);
    fwrite(why, 1, n, stdout);
}

/* The packet a record becomes: the layout's seccomp_data image (the record arrives
 * little-endian; a big-endian layout stores every field most significant byte first), then
 * every 32-bit word as the value seccomp's ld [k] reads, stored big-endian. */
static void make_packet(const uint8_t *rec)
{
    uint8_t img[64];
    int i, b;
    if (little_endian) {
        memcpy(img, rec, 64);
    } else {
        for (i = 0; i < 2; i++)
            for (b = 0; b < 4; b++)
                img[4 * i + b] = rec[4 * i + 3 - b];
        for (i = 0; i < 7; i++)
            for (b = 0; b < 8; b++)
                img[8 + 8 * i + b] = rec[8 + 8 * i + 7 - b];
    }
    for (i = 0; i < 64; i += 4) {
        uint32_t w = little_endian ? get32(img + i)
                                   : (uint32_t)img[i] << 24 | img[i + 1] << 16 | img[i + 2] << 8 | img[i + 3];
        packet[i] = w >> 24;
        packet[i + 1] = w >> 16;
        packet[i + 2] = w >> 8;
        packet[i + 3] = w;
    }
}

#ifdef WITH_DPDK
/* DPDK's last log line (its reason for refusing a program), without the newline. */
static const char *dpdk_reason(char *buf, size_t size, const char *what)
{
    char line[512];
    long end;
    buf[0] = 0;
    fflush(dpdk_log);
    end = ftell(dpdk_log);
    rewind(dpdk_log);
    snprintf(buf, size, "%s", what);
    while (end > 0 && fgets(line, sizeof line, dpdk_log)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == ' ' || line[n - 1] == ';'))
            line[--n] = 0;
        if (n)
            snprintf(buf, size, "%s: %s", what, line);
        if (ftell(dpdk_log) >= end)
            break;
    }
    rewind(dpdk_log);
    return buf;
}

static void dpdk_start(void)
{
    char why[256];
    dpdk_log = tmpfile();
    if (dpdk_log == NULL)
        die("tmpfile() failed");
    if (rte_bpf_abi_eal_start(dpdk_log, why, sizeof why) || rte_bpf_abi_check(why, sizeof why))
        die(why);
    rte_bpf_abi_mbuf(&mbuf, packet, PACKET_LEN);
}
#endif

static void evaluate(const uint8_t *prog, uint32_t nbytes, const uint8_t *recs, uint32_t nrec)
{
    uint32_t n = nbytes / 8, i, r;
    struct bpf_insn *ins;

    if (nbytes % 8 || n == 0 || n > 4096) {
        reject("not a whole number of 1..4096 instructions");
        return;
    }
    ins = calloc(n, sizeof *ins);
    if (!ins)
        die("out of memory");
    for (i = 0; i < n; i++) {
        const uint8_t *p = prog + 8 * i;
        ins[i].code = p[0] | p[1] << 8;
        ins[i].jt = p[2];
        ins[i].jf = p[3];
        ins[i].k = get32(p + 4);
        if (plant_jge && (ins[i].code & 0xf7) == 0x25)
            ins[i].code += 0x10;                        /* jgt -> jge */
    }
    if (engine != PCAP && !keep_dead_code && rte_bpf_abi_drop_dead_code(ins, &n))
        die("out of memory");
    if (engine != PCAP && !keep_unused_k)
        rte_bpf_abi_clear_unused_k(ins, n);
    if (engine == PCAP) {
        if (!bpf_validate(ins, n)) {
            reject("libpcap's bpf_validate() refuses it");
        } else {
            put32(0);
            for (r = 0; r < nrec; r++) {
                make_packet(recs + 64 * r);
                put32(bpf_filter(ins, packet, PACKET_LEN, PACKET_LEN));
            }
        }
        free(ins);
        return;
    }
#ifdef WITH_DPDK
    {
        struct bpf_program bp = {n, ins};
        struct rte_bpf_prm *prm;
        struct rte_bpf *bpf;
        struct rte_bpf_jit jit = {0, 0};
        char why[640];

        rewind(dpdk_log);
        prm = rte_bpf_convert(&bp);
        if (prm == NULL) {
            reject(dpdk_reason(why, sizeof why, "rte_bpf_convert() refuses it"));
            free(ins);
            return;
        }
        rewind(dpdk_log);
        bpf = rte_bpf_load(prm);
        rte_free(prm);
        if (bpf == NULL) {
            reject(dpdk_reason(why, sizeof why, "rte_bpf_load() refuses it"));
            free(ins);
            return;
        }
        if (engine != DPDK_INTERP && (rte_bpf_get_jit(bpf, &jit) != 0 || jit.func == NULL)) {
            reject("DPDK's JIT produced no code for it");
            rte_bpf_destroy(bpf);
            free(ins);
            return;
        }
        put32(0);
        for (r = 0; r < nrec; r++) {
            uint64_t vi = 0, vj = 0, v;
            make_packet(recs + 64 * r);
            if (engine != DPDK_JIT)
                vi = rte_bpf_exec(bpf, &mbuf);
            if (engine != DPDK_INTERP)
                vj = jit.func(&mbuf);
            v = engine == DPDK_JIT ? vj : vi;
            if (engine == DPDK_BOTH && vi != vj) {
                fprintf(stderr, "peer_candidate: DPDK's interpreter returns %#llx and its JIT "
                        "%#llx\n", (unsigned long long)vi, (unsigned long long)vj);
                abort();
            }
            if (v >> 32) {
                fprintf(stderr, "peer_candidate: DPDK returned %#llx, more than 32 bits\n",
                        (unsigned long long)v);
                abort();
            }
            put32((uint32_t)v);
        }
        rte_bpf_destroy(bpf);
    }
#endif
    free(ins);
}

int main(int argc, char **argv)
{
    uint8_t head[20];
    char name[256];
    uint32_t name_len;
    int i;

    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--engine") && i + 1 < argc) {
            const char *e = argv[++i];
            if (!strcmp(e, "pcap"))
                engine = PCAP;
            else if (!strcmp(e, "dpdk"))
                engine = DPDK_INTERP;
            else if (!strcmp(e, "dpdk-jit"))
                engine = DPDK_JIT;
            else if (!strcmp(e, "dpdk-both"))
                engine = DPDK_BOTH;
            else
                die("--engine: pcap, dpdk, dpdk-jit or dpdk-both");
        } else if (!strcmp(argv[i], "--keep-dead-code")) {
            keep_dead_code = 1;
        } else if (!strcmp(argv[i], "--keep-unused-k")) {
            keep_unused_k = 1;
        } else if (!strcmp(argv[i], "--plant") && i + 1 < argc && !strcmp(argv[i + 1], "jge-for-jgt")) {
            plant_jge = 1;
            i++;
        } else {
            fprintf(stderr, "usage: %s [--engine pcap|dpdk|dpdk-jit|dpdk-both] "
                    "[--keep-dead-code] [--keep-unused-k] [--plant jge-for-jgt]\n", argv[0]);
            return 2;
        }
    }
#ifdef WITH_DPDK
    if (engine != PCAP) {
        dpdk_start();
    }
#else
    if (engine != PCAP)
        die("built without DPDK (-DWITH_DPDK): only --engine pcap");
#endif
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
        uint32_t op, nprog, nbytes, nrec;
        if (!read_all(hdr, 8))
            return 0;                                   /* stdin closed: the run is over */
        op = get32(hdr);
        nprog = get32(hdr + 4);
        if (nprog != 1 || !read_all(hdr, 4))
            die("expected one program");
        nbytes = get32(hdr);
        if (nbytes > (1 << 20))
            die("program too large");
        prog = malloc(nbytes ? nbytes : 1);
        if (!prog || !read_all(prog, nbytes))
            die("truncated program");
        if (op == OP_CHECK) {                           /* not asked: we declare verdicts-only */
            put32(0);
        } else if (op == OP_EVALUATE) {
            if (!read_all(hdr, 4))
                die("truncated request");
            nrec = get32(hdr);
            if (nrec > (1 << 20))
                die("too many records");
            recs = malloc(64 * (size_t)nrec + 1);
            if (!recs || !read_all(recs, 64 * (size_t)nrec))
                die("truncated records");
            evaluate(prog, nbytes, recs, nrec);
            free(recs);
        } else {
            die("unknown op");
        }
        fflush(stdout);
        free(prog);
    }
}
