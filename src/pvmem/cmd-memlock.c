/* SPDX-License-Identifier: MIT */
/*
 * pvmem memlock: compute, explain and apply RLIMIT_MEMLOCK from a libvirt domain XML.
 *
 *   pvmem memlock [--json] [--explain] [--arch ARCH] [--iommufd] DOMAIN.xml
 *   pvmem memlock apply   --pid PID [--state-dir DIR] [--soft-only] DOMAIN.xml
 *   pvmem memlock attach  --pid PID [--state-dir DIR] DOMAIN.xml DEVICE.xml
 *   pvmem memlock detach  --pid PID [--state-dir DIR] DOMAIN.xml DEVICE-ID
 *   pvmem memlock restore --pid PID [--state-dir DIR]
 *   pvmem memlock show    --pid PID [--state-dir DIR]
 *
 * Exit status: 0 done, 1 the system refused (EPERM, no such process), 2 usage or input error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <pvmem/memlock.h>

#include "cli.h"

struct opts {
	const char *action;          /* NULL (compute), apply, attach, detach, restore, show */
	bool json;                   /* --json */
	bool explain;                /* --explain */
	bool soft_only;              /* --soft-only */
	bool have_arch;              /* --arch given */
	enum pvm_arch arch;          /* its value */
	enum pvm_memlock_model model;/* --iommufd */
	long pid;                    /* --pid, 0 when absent */
	const char *state_dir;       /* --state-dir */
	const char *sysfs_root;      /* --sysfs-root (tests) */
	const char *host_root;       /* --host-root (tests); "none" skips the host checks */
	const char *args[2];         /* positional arguments */
	int nargs;                   /* how many */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pvmem memlock [--json] [--explain] [--arch ARCH] [--iommufd] DOMAIN.xml\n"
		"       pvmem memlock apply   --pid PID [--state-dir DIR] [--soft-only] DOMAIN.xml\n"
		"       pvmem memlock attach  --pid PID [--state-dir DIR] DOMAIN.xml DEVICE.xml\n"
		"       pvmem memlock detach  --pid PID [--state-dir DIR] DOMAIN.xml DEVICE-ID\n"
		"       pvmem memlock restore --pid PID [--state-dir DIR]\n"
		"       pvmem memlock show    --pid PID [--state-dir DIR]\n\n"
		"Computes RLIMIT_MEMLOCK exactly as libvirt does for a QEMU/KVM domain, explains it term\n"
		"by term, and applies it to a running process with prlimit(2), remembering the original\n"
		"limit so that `restore` can put it back.\n\n"
		"  --json         {\"limit\": bytes | \"unlimited\" | null, \"arch\", \"terms\": [...]};\n"
		"                 null means: leave the process limit alone\n"
		"  --explain      show every term of the limit and why\n"
		"  --arch ARCH    treat the guest as ARCH (x86_64, i686, ppc64, ppc64le, aarch64, s390x)\n"
		"  --iommufd      model iommufd accounting (adds device BARs) instead of VFIO type1\n"
		"  --soft-only    apply: set the soft limit, keep the hard limit when it is high enough\n"
		"  --state-dir D  where the original limit is kept (default /run/pvmem or\n"
		"                 $XDG_RUNTIME_DIR/pvmem)\n"
		"  --sysfs-root D read host PCI devices below D instead of /sys\n"
		"  --host-root D  read /proc/meminfo and cgroups below D (\"none\": no host checks)\n");
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	int i = 1;

	memset(o, 0, sizeof(*o));
	if (i < argc && argv[i][0] != '-' &&
	    (!strcmp(argv[i], "apply") || !strcmp(argv[i], "attach") || !strcmp(argv[i], "detach") ||
	     !strcmp(argv[i], "restore") || !strcmp(argv[i], "show")))
		o->action = argv[i++];
	for (; i < argc; i++) {
		const char *a = argv[i];
		bool has_val = i + 1 < argc;

		if (!strcmp(a, "--json")) {
			o->json = true;
		} else if (!strcmp(a, "--explain")) {
			o->explain = true;
		} else if (!strcmp(a, "--iommufd")) {
			o->model = PVM_MEMLOCK_MODEL_IOMMUFD;
		} else if (!strcmp(a, "--soft-only")) {
			o->soft_only = true;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 1;
		} else if (!strcmp(a, "--arch") && has_val) {
			if (pvm_arch_from_name(argv[++i], &o->arch) < 0) {
				pvm_cli_error("memlock", "unknown architecture '%s'", argv[i]);
				return -1;
			}
			o->have_arch = true;
		} else if (!strcmp(a, "--pid") && has_val) {
			char *end;

			o->pid = strtol(argv[++i], &end, 10);
			if (*end || end == argv[i] || o->pid <= 0) {
				pvm_cli_error("memlock", "invalid pid '%s'", argv[i]);
				return -1;
			}
		} else if (!strcmp(a, "--state-dir") && has_val) {
			o->state_dir = argv[++i];
		} else if (!strcmp(a, "--sysfs-root") && has_val) {
			o->sysfs_root = argv[++i];
		} else if (!strcmp(a, "--host-root") && has_val) {
			o->host_root = argv[++i];
		} else if (a[0] == '-' && a[1]) {
			pvm_cli_error("memlock", "unknown option or missing value: '%s' (try --help)", a);
			return -1;
		} else if (o->nargs < 2) {
			o->args[o->nargs++] = a;
		} else {
			pvm_cli_error("memlock", "too many arguments");
			return -1;
		}
	}
	return 0;
}

static const char *fmt_limit(uint64_t v, char *buf, size_t len)
{
	char sz[32];

	if (v == PVM_MEMLOCK_INFINITY)
		return "unlimited";
	snprintf(buf, len, "%llu bytes (%s)", (unsigned long long)v, pvm_size_format(v, sz, sizeof(sz)));
	return buf;
}

static json_object *json_bytes(uint64_t v)
{
	if (v == PVM_MEMLOCK_INFINITY)
		return json_object_new_string("unlimited");
	return json_object_new_uint64(v);
}

static void print_json(const struct pvm_domain *dom, const struct pvm_memlock_result *r,
		       enum pvm_memlock_model model)
{
	json_object *o = json_object_new_object(), *terms = json_object_new_array(),
		    *warns = json_object_new_array();

	switch (pvm_memlock_result_kind(r)) {
	case PVM_MEMLOCK_NONE: json_object_object_add(o, "limit", NULL); break;
	case PVM_MEMLOCK_UNLIMITED: json_object_object_add(o, "limit", json_object_new_string("unlimited")); break;
	case PVM_MEMLOCK_BYTES: json_object_object_add(o, "limit", json_bytes(pvm_memlock_result_bytes(r))); break;
	}
	json_object_object_add(o, "arch", json_object_new_string(pvm_memlock_result_arch(r)));
	json_object_object_add(o, "virt", json_object_new_string(pvm_domain_virt(dom) == PVM_DOMAIN_VIRT_KVM ? "kvm" : "qemu"));
	json_object_object_add(o, "rule", json_object_new_string(pvm_memlock_result_rule(r)));
	json_object_object_add(o, "model", json_object_new_string(model == PVM_MEMLOCK_MODEL_IOMMUFD ? "iommufd" : "type1"));
	json_object_object_add(o, "libvirt", json_object_new_uint64(pvm_memlock_result_libvirt(r)));
	for (size_t i = 0; i < pvm_memlock_result_term_count(r); i++) {
		const struct pvm_memlock_term *t = pvm_memlock_result_term(r, i);
		json_object *jt = json_object_new_object();

		json_object_object_add(jt, "name", json_object_new_string(t->name));
		json_object_object_add(jt, "bytes", json_bytes(t->bytes));
		json_object_object_add(jt, "why", json_object_new_string(t->why));
		json_object_array_add(terms, jt);
	}
	json_object_object_add(o, "terms", terms);
	for (size_t i = 0; i < pvm_memlock_result_warning_count(r); i++)
		json_object_array_add(warns, json_object_new_string(pvm_memlock_result_warning(r, i)));
	json_object_object_add(o, "warnings", warns);
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
}

static void print_human(const struct pvm_domain *dom, const struct pvm_memlock_result *r, bool explain)
{
	char buf[64], sz[32];
	const char *name = pvm_domain_name(dom);

	printf("domain %s (%s, %s): ", name ? name : "(unnamed)", pvm_memlock_result_arch(r),
	       pvm_domain_virt(dom) == PVM_DOMAIN_VIRT_KVM ? "kvm" : "tcg");
	switch (pvm_memlock_result_kind(r)) {
	case PVM_MEMLOCK_NONE:
		printf("no locked memory needed: leave RLIMIT_MEMLOCK alone\n");
		break;
	case PVM_MEMLOCK_UNLIMITED:
		printf("RLIMIT_MEMLOCK unlimited\n");
		break;
	case PVM_MEMLOCK_BYTES:
		printf("RLIMIT_MEMLOCK %s\n", fmt_limit(pvm_memlock_result_bytes(r), buf, sizeof(buf)));
		break;
	}
	if (explain) {
		printf("rule: %s\n", pvm_memlock_result_rule(r));
		for (size_t i = 0; i < pvm_memlock_result_term_count(r); i++) {
			const struct pvm_memlock_term *t = pvm_memlock_result_term(r, i);

			printf("  %s %-10s %-18s %s\n", i ? "+" : " ",
			       t->bytes == PVM_MEMLOCK_INFINITY ? "unlimited" : pvm_size_format(t->bytes, sz, sizeof(sz)),
			       t->name, t->why);
		}
		if (pvm_memlock_result_kind(r) == PVM_MEMLOCK_BYTES && pvm_memlock_result_term_count(r) > 1)
			printf("  = %s\n", pvm_size_format(pvm_memlock_result_bytes(r), sz, sizeof(sz)));
		if (pvm_memlock_result_kind(r) == PVM_MEMLOCK_NONE)
			printf("  no VFIO hostdev, NVMe disk or vDPA device: QEMU pins no guest memory, so the\n"
			       "  process keeps the limit it inherits\n");
	}
	for (size_t i = 0; i < pvm_memlock_result_warning_count(r); i++)
		fprintf(stderr, "pvmem: memlock: warning: %s\n", pvm_memlock_result_warning(r, i));
}

/* Load the domain (and apply --arch / --sysfs-root). Exit status on failure. */
static int load_domain(const struct opts *o, const char *path, struct pvm_domain **dom)
{
	struct pvm_error err = { 0 };
	int rc;

	rc = pvm_domain_parse_file(path, o->sysfs_root ? PVM_DOMAIN_PARSE_NO_HOST : 0, dom, &err);
	if (rc == 0 && o->sysfs_root)
		rc = pvm_domain_probe_host(*dom, o->sysfs_root, &err);
	if (rc < 0) {
		pvm_cli_error("memlock", "%s", pvm_error_message(&err));
		pvm_domain_free(*dom);
		*dom = NULL;
		return rc == -ENOMEM ? PVM_EXIT_FAIL : PVM_EXIT_USAGE;
	}
	if (o->have_arch)
		pvm_domain_set_arch(*dom, o->arch);
	return PVM_EXIT_OK;
}

static int compute(const struct opts *o, const struct pvm_domain *dom, struct pvm_memlock_result **res)
{
	struct pvm_memlock_options mo = { .model = o->model };
	struct pvm_memlock_host host;
	struct pvm_error err = { 0 };

	if (!o->host_root || strcmp(o->host_root, "none")) {
		if (pvm_memlock_host_read(o->host_root, (pid_t)o->pid, &host, NULL) == 0)
			mo.host = &host;
	}
	if (pvm_memlock_compute(dom, &mo, res, &err) < 0) {
		pvm_cli_error("memlock", "%s", pvm_error_message(&err));
		return PVM_EXIT_FAIL;
	}
	return PVM_EXIT_OK;
}

static int fail(struct pvm_error *err)
{
	pvm_cli_error("memlock", "%s", pvm_error_message(err));
	return err->code == -EINVAL ? PVM_EXIT_USAGE : PVM_EXIT_FAIL;
}

static void report_now(pid_t pid)
{
	uint64_t s, h;
	char a[64], b[64];

	if (pvm_memlock_get(pid, &s, &h, NULL) == 0)
		printf("process %d: RLIMIT_MEMLOCK soft %s, hard %s\n", (int)pid, fmt_limit(s, a, sizeof(a)),
		       fmt_limit(h, b, sizeof(b)));
}

/* apply / attach / detach / restore / show */
static int run_action(const struct opts *o)
{
	struct pvm_domain *dom = NULL;
	struct pvm_memlock_result *res = NULL;
	struct pvm_memlock_ctl *ctl = NULL;
	struct pvm_error err = { 0 };
	bool is_restore = !strcmp(o->action, "restore"), is_show = !strcmp(o->action, "show");
	int need_args = is_restore || is_show ? 0 : !strcmp(o->action, "apply") ? 1 : 2;
	int status = PVM_EXIT_OK, rc;
	const char *id = NULL;

	if (!o->pid || o->nargs != need_args) {
		pvm_cli_error("memlock", "%s needs --pid PID%s (try --help)", o->action,
			      need_args == 0 ? "" : need_args == 1 ? " and DOMAIN.xml" : " and two arguments");
		return PVM_EXIT_USAGE;
	}
	if (need_args && (status = load_domain(o, o->args[0], &dom)) != PVM_EXIT_OK)
		return status;
	if (!strcmp(o->action, "attach")) {
		FILE *f = fopen(o->args[1], "re");
		char buf[65536];
		size_t n;

		if (!f) {
			pvm_cli_error("memlock", "%s: %s", o->args[1], strerror(errno));
			status = PVM_EXIT_USAGE;
			goto out;
		}
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		if ((rc = pvm_domain_attach_xml(dom, buf, n, &id, &err)) < 0 ||
		    (rc = pvm_domain_probe_host(dom, o->sysfs_root, &err)) < 0) {
			pvm_error_prefix(&err, "%s", o->args[1]);
			status = fail(&err);
			goto out;
		}
	} else if (!strcmp(o->action, "detach")) {
		if (pvm_domain_detach(dom, o->args[1], &err) < 0) {
			status = fail(&err);
			if (err.code == -ENOENT) /* DOMAIN.xml has no such device: an input error */
				status = PVM_EXIT_USAGE;
			goto out;
		}
	}
	if (dom && (status = compute(o, dom, &res)) != PVM_EXIT_OK)
		goto out;
	if (pvm_memlock_ctl_open((pid_t)o->pid, o->state_dir, o->soft_only ? PVM_MEMLOCK_CTL_SOFT_ONLY : 0,
				 &ctl, &err) < 0) {
		status = fail(&err);
		goto out;
	}
	if (is_show) {
		uint64_t s, h;
		char a[64], b[64];

		report_now((pid_t)o->pid);
		if (pvm_memlock_ctl_original(ctl, &s, &h))
			printf("original (saved in %s): soft %s, hard %s\n", pvm_memlock_ctl_state_path(ctl),
			       fmt_limit(s, a, sizeof(a)), fmt_limit(h, b, sizeof(b)));
		else
			printf("no original saved (pvmem has not changed this process's limit)\n");
		goto out;
	}
	if (is_restore)
		rc = pvm_memlock_ctl_restore(ctl, &err);
	else if (!strcmp(o->action, "apply"))
		rc = pvm_memlock_ctl_set(ctl, res, &err);
	else if (!strcmp(o->action, "attach"))
		rc = pvm_memlock_ctl_before_attach(ctl, res, &err);
	else
		rc = pvm_memlock_ctl_after_detach(ctl, res, &err);
	if (rc < 0) {
		status = fail(&err);
		goto out;
	}
	if (id)
		printf("device %s: limit ready, attach it now\n", id);
	for (size_t i = 0; res && i < pvm_memlock_result_warning_count(res); i++)
		fprintf(stderr, "pvmem: memlock: warning: %s\n", pvm_memlock_result_warning(res, i));
	report_now((pid_t)o->pid);
out:
	pvm_memlock_ctl_free(ctl);
	pvm_memlock_result_free(res);
	pvm_domain_free(dom);
	return status;
}

int pvm_cmd_memlock(int argc, char **argv)
{
	struct pvm_domain *dom = NULL;
	struct pvm_memlock_result *res = NULL;
	struct opts o;
	int status, rc = parse_args(argc, argv, &o);

	if (rc)
		return rc > 0 ? PVM_EXIT_OK : PVM_EXIT_USAGE;
	if (o.action)
		return run_action(&o);
	if (o.nargs != 1) {
		pvm_cli_error("memlock", "expected one DOMAIN.xml (try --help)");
		return PVM_EXIT_USAGE;
	}
	if ((status = load_domain(&o, o.args[0], &dom)) != PVM_EXIT_OK)
		return status;
	if ((status = compute(&o, dom, &res)) == PVM_EXIT_OK) {
		if (o.json)
			print_json(dom, res, o.model);
		else
			print_human(dom, res, o.explain);
	}
	pvm_memlock_result_free(res);
	pvm_domain_free(dom);
	return status;
}
