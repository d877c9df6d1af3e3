/*
 * The part of DPDK's ABI bpfjit uses (peer_candidate.c, bpfjit.baselines' DPDK JIT loop), as
 * declared in DPDK 22.11's lib/bpf/rte_bpf.h and lib/mbuf/rte_mbuf_core.h: Debian's
 * librte-bpf23 ships no headers, and libdpdk-dev would pull in ~230 packages. Users check the
 * one layout fact DPDK's code relies on at run time, offsetof(struct rte_mbuf, pkt_len), by
 * reading it back from a converted `ld len` (rte_bpf_abi_check below).
 */
#ifndef BPFJIT_RTE_BPF_ABI_H
#define BPFJIT_RTE_BPF_ABI_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/types.h>
#include <sched.h>
#include <unistd.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <pcap/bpf.h>
struct ebpf_insn {
    uint8_t code;
    uint8_t regs;                 /* dst_reg:4, src_reg:4 */
    int16_t off;
    int32_t imm;
};
struct rte_bpf_arg {
    int type;                     /* enum rte_bpf_arg_type */
    size_t size;
    size_t buf_size;
};
struct rte_bpf_prm {
    const struct ebpf_insn *ins;
    uint32_t nb_ins;
    const void *xsym;
    uint32_t nb_xsym;
    struct rte_bpf_arg prog_arg;
};
struct rte_bpf_jit {
    uint64_t (*func)(void *);
    size_t sz;
};
struct rte_bpf;
/* struct rte_mbuf, 22.11 with RTE_IOVA_AS_PA (Debian's build): two 64-byte cache lines */
struct fake_mbuf {
    void *buf_addr;               /* 0 */
    uint64_t buf_iova;            /* 8 */
    uint16_t data_off;            /* 16 */
    uint16_t refcnt;              /* 18 */
    uint16_t nb_segs;             /* 20 */
    uint16_t port;                /* 22 */
    uint64_t ol_flags;            /* 24 */
    uint32_t packet_type;         /* 32 */
    uint32_t pkt_len;             /* 36 */
    uint16_t data_len;            /* 40 */
    uint16_t vlan_tci;            /* 42 */
    uint32_t hash_lo, hash_hi;    /* 44 */
    uint16_t vlan_tci_outer;      /* 52 */
    uint16_t buf_len;             /* 54 */
    void *pool;                   /* 56 */
    void *next;                   /* 64: second cache line */
    uint64_t tx_offload;
    void *shinfo;
    uint16_t priv_size, timesync;
    uint32_t dynfield1[9];
} __attribute__((aligned(64)));
#define MBUF_PKT_LEN_OFFSET 36
_Static_assert(offsetof(struct fake_mbuf, data_off) == 16, "rte_mbuf.data_off");
_Static_assert(offsetof(struct fake_mbuf, nb_segs) == 20, "rte_mbuf.nb_segs");
_Static_assert(offsetof(struct fake_mbuf, pkt_len) == MBUF_PKT_LEN_OFFSET, "rte_mbuf.pkt_len");
_Static_assert(offsetof(struct fake_mbuf, data_len) == 40, "rte_mbuf.data_len");
_Static_assert(offsetof(struct fake_mbuf, buf_len) == 54, "rte_mbuf.buf_len");
_Static_assert(offsetof(struct fake_mbuf, next) == 64, "rte_mbuf.next");
_Static_assert(sizeof(struct fake_mbuf) == 128, "sizeof(struct rte_mbuf)");

extern struct rte_bpf_prm *rte_bpf_convert(const struct bpf_program *prog);
extern struct rte_bpf *rte_bpf_load(const struct rte_bpf_prm *prm);
extern uint64_t rte_bpf_exec(const struct rte_bpf *bpf, void *ctx);
extern int rte_bpf_get_jit(const struct rte_bpf *bpf, struct rte_bpf_jit *jit);
extern void rte_bpf_destroy(struct rte_bpf *bpf);
extern void rte_free(void *ptr);
extern int rte_eal_init(int argc, char **argv);
extern int rte_openlog_stream(FILE *f);
extern __thread int per_lcore__rte_errno;


/* Start DPDK's EAL, which rte_bpf_convert() needs (it allocates with rte_zmalloc(), which
 * fails with ENOMEM before rte_eal_init()): no hugepages, PCI, telemetry or shared files, on the
 * first CPU this process may run on; its log goes to `log`. EAL pins the calling thread to that
 * CPU and its console log writes to stdout: both are undone here. 0, or -1 and why. */
static inline int rte_bpf_abi_eal_start(FILE *log, char *why, size_t size)
{
    static char lcore[32];
    cpu_set_t set;
    int cpu = 0, out, ok, have_set;
    char *args[] = {"bpfjit-peer", "--no-huge", "-m", "32", "--no-pci", "--no-shconf",
                    "--no-telemetry", "-l", lcore, "--log-level=lib.eal:error", NULL};
    have_set = sched_getaffinity(0, sizeof set, &set) == 0;
    if (have_set)
        while (cpu < CPU_SETSIZE - 1 && !CPU_ISSET(cpu, &set))
            cpu++;
    snprintf(lcore, sizeof lcore, "%d", cpu);
    fflush(stdout);
    out = dup(1);
    if (out < 0 || dup2(2, 1) < 0) {
        snprintf(why, size, "dup() failed");
        return -1;
    }
    ok = rte_eal_init(10, args) >= 0;
    rte_openlog_stream(log);
    fflush(stdout);
    dup2(out, 1);
    close(out);
    if (have_set)
        sched_setaffinity(0, sizeof set, &set);
    if (!ok) {
        snprintf(why, size, "rte_eal_init() failed (rte_errno %d)", per_lcore__rte_errno);
        return -1;
    }
    return 0;
}

/* A one-segment mbuf of `len` bytes at `data` */
static inline void rte_bpf_abi_mbuf(struct fake_mbuf *m, void *data, uint32_t len)
{
    memset(m, 0, sizeof *m);
    m->buf_addr = data;
    m->refcnt = 1;
    m->nb_segs = 1;
    m->pkt_len = len;
    m->data_len = len;
    m->buf_len = len;
}

/* 0 when DPDK's converter reads pkt_len where struct fake_mbuf has it, else -1 (and why) */
static inline int rte_bpf_abi_check(char *why, size_t size)
{
    struct bpf_insn ins[2] = {{0x80, 0, 0, 0}, {0x16, 0, 0, 0}};
    struct bpf_program prog = {2, ins};
    struct rte_bpf_prm *prm = rte_bpf_convert(&prog);
    int ok;
    if (prm == NULL) {
        snprintf(why, size, "rte_bpf_convert() fails on `ld len; ret a` (rte_errno %d)",
                 per_lcore__rte_errno);
        return -1;
    }
    ok = prm->nb_ins >= 4 && prm->ins[3].off == MBUF_PKT_LEN_OFFSET &&
         prm->prog_arg.size == sizeof(struct fake_mbuf);
    if (!ok)
        snprintf(why, size, "this DPDK's struct rte_mbuf differs from DPDK 22.11's (pkt_len at %d, "
                 "size %zu)", prm->nb_ins >= 4 ? prm->ins[3].off : -1, prm->prog_arg.size);
    rte_free(prm);
    return ok ? 0 : -1;
}

/* --- Adaptations: what DPDK refuses in programs Linux installs, removed without changing what a
 * program returns (bpfjit.testing.peers.ADAPTATIONS) --- */
/* Drop the instructions no path reaches, fixing every jump offset; n becomes the new length.
 * Linux's checker accepts dead code, DPDK's eBPF validator refuses it ("unreachable
 * instructions"), and removing it changes nothing a program returns. Every kept jump target is
 * reachable, so each offset only shrinks. 0, or -1 when out of memory. */
static inline int rte_bpf_abi_drop_dead_code(struct bpf_insn *ins, uint32_t *n)
{
    uint32_t i, j, m = *n;
    uint8_t *live = calloc(m, 1);
    uint32_t *to = calloc(m + 1, sizeof *to);
    if (!live || !to) {
        free(live);
        free(to);
        return -1;
    }
    live[0] = 1;
    for (i = 0; i < m; i++) {               /* classic jumps go forward only */
        uint16_t c = ins[i].code;
        if (!live[i])
            continue;
        if ((c & 7) == 0x06)                /* ret */
            continue;
        if ((c & 7) == 0x05) {              /* jmp */
            if (c == 0x05) {
                if (i + 1 + ins[i].k < m)
                    live[i + 1 + ins[i].k] = 1;
            } else {
                if (i + 1 + ins[i].jt < m)
                    live[i + 1 + ins[i].jt] = 1;
                if (i + 1 + ins[i].jf < m)
                    live[i + 1 + ins[i].jf] = 1;
            }
        } else if (i + 1 < m) {
            live[i + 1] = 1;
        }
    }
    for (i = 0, j = 0; i < m; i++) {
        to[i] = j;
        j += live[i];
    }
    to[m] = j;
    for (i = 0, j = 0; i < m; i++) {
        struct bpf_insn in = ins[i];
        if (!live[i])
            continue;
        if (in.code == 0x05)
            in.k = to[i + 1 + in.k] - to[i] - 1;
        else if ((in.code & 7) == 0x05) {
            in.jt = to[i + 1 + in.jt] - to[i] - 1;
            in.jf = to[i + 1 + in.jf] - to[i] - 1;
        }
        ins[j++] = in;
    }
    *n = j;
    free(live);
    free(to);
    return 0;
}

/* Zero the k of instructions that do not use it and where rte_bpf_convert copies it into the
 * eBPF imm field anyway (X-form ALU and jumps, neg): Linux ignores it, DPDK's validator refuses
 * a nonzero imm there ("invalid imm field"). */
static inline void rte_bpf_abi_clear_unused_k(struct bpf_insn *ins, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        uint16_t c = ins[i].code;
        if (((c & 7) == 0x04 && ((c & 0x08) || (c & 0xf0) == 0x80)) ||   /* alu x, neg */
            ((c & 7) == 0x05 && (c & 0x08) && (c & 0xf0) != 0x00))        /* jxx x */
            ins[i].k = 0;
    }
}

#endif
