/* SPDX-License-Identifier: MIT */
/*
 * Internal helpers shared by all modules: checked allocation, overflow checks, trace points,
 * alignment. Not installed; nothing here is exported.
 */
#ifndef PVM_CORE_UTIL_H
#define PVM_CORE_UTIL_H

#include <pvmem/core.h>
#include <stdatomic.h>

/* ---- checked allocation (all library allocations go through these) --------------------------
 * pvm_calloc/pvm_reallocarray check the multiplication for overflow. In test builds a failure
 * can be injected at the N-th allocation (core/alloc-priv.h). */
void *pvm_malloc(size_t size) __attribute__((malloc));
void *pvm_calloc(size_t n, size_t size) __attribute__((malloc));
void *pvm_reallocarray(void *p, size_t n, size_t size);
char *pvm_strdup(const char *s) __attribute__((malloc));
char *pvm_strndup(const char *s, size_t n) __attribute__((malloc));
/* printf into fresh memory; NULL on failure. */
char *pvm_asprintf(const char *fmt, ...) PVM_PRINTF(1, 2);
void pvm_free(void *p);

static inline void pvm_freep(void *pp)
{
	pvm_free(*(void **)pp);
}
#define _pvm_cleanup_(f) __attribute__((cleanup(f)))
#define _pvm_cleanup_free_ _pvm_cleanup_(pvm_freep)

/* Take ownership: return *pp and set it to NULL. */
#define pvm_steal_ptr(pp)                              \
	({                                             \
		__typeof__(*(pp)) _p = *(pp);          \
		*(pp) = NULL;                          \
		_p;                                    \
	})

/* ---- arithmetic ---------------------------------------------------------------------------- */

#define pvm_add_overflow(a, b, r) __builtin_add_overflow((a), (b), (r))
#define pvm_mul_overflow(a, b, r) __builtin_mul_overflow((a), (b), (r))
#define PVM_IS_POW2(x) ((x) != 0 && (((x) & ((x)-1)) == 0))
#define PVM_IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a)-1)) == 0)
#define PVM_ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a)-1))
#define PVM_ALIGN_UP(x, a) PVM_ALIGN_DOWN((x) + ((__typeof__(x))(a)-1), (a))
#define PVM_DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))
#define PVM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PVM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define PVM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PVM_KiB (1024ULL)
#define PVM_MiB (1024ULL * 1024)
#define PVM_GiB (1024ULL * 1024 * 1024)
#define PVM_TiB (1024ULL * 1024 * 1024 * 1024)

/* True when [a, a+len) wraps around 2^64 (len > 0). */
static inline bool pvm_range_wraps(uint64_t a, uint64_t len)
{
	uint64_t end;
	return len && pvm_add_overflow(a, len - 1, &end);
}

/* ---- trace points ----------------------------------------------------------------------------
 * PVM_TRACE(name, fmt, ...) records one event when tracing is on and @name matches PVMEM_TRACE.
 * Off by default; the disabled cost is one predicted-false load. Arguments use 0x-prefixed hex
 * for addresses and sizes. */
struct pvm_trace_point {
	const char *name;          /* the trace point's name, as matched by the patterns */
	atomic_uint generation;    /* pattern generation this point's state was computed for */
	atomic_bool enabled;       /* cached match result for that generation */
};
extern atomic_bool pvm_trace_active;
bool pvm_trace_point_enabled(struct pvm_trace_point *tp);
void pvm_trace_emit(struct pvm_trace_point *tp, const char *fmt, ...) PVM_PRINTF(2, 3);

#define PVM_TRACE(tpname, fmt, ...)                                                              \
	do {                                                                                     \
		static struct pvm_trace_point _pvm_tp = { .name = #tpname };                      \
		if (__builtin_expect(atomic_load_explicit(&pvm_trace_active,                     \
							  memory_order_relaxed), 0) &&           \
		    pvm_trace_point_enabled(&_pvm_tp))                                            \
			pvm_trace_emit(&_pvm_tp, fmt, ##__VA_ARGS__);                             \
	} while (0)

#define pvm_err(...) pvm_log(PVM_LOG_ERROR, __VA_ARGS__)
#define pvm_warn(...) pvm_log(PVM_LOG_WARN, __VA_ARGS__)
#define pvm_info(...) pvm_log(PVM_LOG_INFO, __VA_ARGS__)
#define pvm_debug(...) pvm_log(PVM_LOG_DEBUG, __VA_ARGS__)

#endif /* PVM_CORE_UTIL_H */
