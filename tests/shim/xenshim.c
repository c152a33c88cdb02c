/*
 * xenshim: an LD_PRELOAD library for the tests ONLY. It lets the real libxenlight allocate a
 * context on a machine without a Xen hypervisor, so the tests can prove that the configs the
 * project builds survive libxl's own JSON parser and printer, and can run `xl -N create` (dry run)
 * as a reference converter.
 *
 * The fake xc/xs handles are PROT_NONE guard pages: any libxc/xenstore call that really needs Xen
 * and is not faked here dereferences them and crashes at once, instead of returning made-up data.
 * The few calls that are faked (version, cpu count, physinfo, sharing counters) describe a fixed
 * x86_64 host (16 cpus, 8 NUMA nodes, 16 GiB: enough for the corpus vNUMA guests; an IOMMU that
 * shares the HAP tables, so PCI passthrough is possible); they are what `xl -N create` asks before
 * it prints the config. `xc_domain_create` and a two-key read-only xenstore (below) let
 * `libxl_domain_create_new` run every check it makes on a config, up to the hypercall that would
 * make the domain; a domain list holding domain 0 alone lets libxl list the host and find that
 * any other domid does not exist (tests/test_backend_contract.py). No fake ever makes a domain.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xenctrl.h>
#include <xenstore.h>
#include <xen/version.h>

static void *guard_page(void)
{
    void *p = mmap(NULL, (size_t)sysconf(_SC_PAGESIZE), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void release_page(void *p)
{
    if (p)
        munmap(p, (size_t)sysconf(_SC_PAGESIZE));
}

xc_interface *xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild_logger,
                                unsigned open_flags)
{
    (void)logger; (void)dombuild_logger; (void)open_flags;
    return guard_page();
}

int xc_interface_close(xc_interface *xch)
{
    release_page(xch);
    return 0;
}

struct xs_handle *xs_open(unsigned long flags)
{
    (void)flags;
    return guard_page();
}

void xs_close(struct xs_handle *xsh)
{
    release_page(xsh);
}

static int copy_text(void *arg, size_t size, const char *text)
{
    strncpy((char *)arg, text, size - 1);
    ((char *)arg)[size - 1] = '\0';
    return 0;
}

int xc_version(xc_interface *xch, int cmd, void *arg)
{
    (void)xch;
    switch (cmd) {
    case XENVER_version:
        return (4 << 16) | 17;
    case XENVER_extraversion:
        return copy_text(arg, sizeof(xen_extraversion_t), ".0-shim");
    case XENVER_capabilities:
        return copy_text(arg, sizeof(xen_capabilities_info_t),
                         "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64");
    case XENVER_changeset:
        return copy_text(arg, sizeof(xen_changeset_info_t), "shim");
    case XENVER_commandline:
        return copy_text(arg, sizeof(xen_commandline_t), "");
    case XENVER_compile_info:
        memset(arg, 0, sizeof(xen_compile_info_t));
        return 0;
    case XENVER_platform_parameters:
        memset(arg, 0, sizeof(xen_platform_parameters_t));
        return 0;
    case XENVER_pagesize:
        return 4096;
    default:
        return -1;
    }
}

int xc_get_max_cpus(xc_interface *xch)
{
    (void)xch;
    return 16;
}

int xc_physinfo(xc_interface *xch, xc_physinfo_t *info)
{
    (void)xch;
    memset(info, 0, sizeof(*info));
    info->threads_per_core = 1;
    info->cores_per_socket = 16;
    info->nr_cpus = 16;
    info->max_cpu_id = 15;
    info->nr_nodes = 8;
    info->max_node_id = 7;
    info->cpu_khz = 2000000;
    info->capabilities = XEN_SYSCTL_PHYSCAP_hvm | XEN_SYSCTL_PHYSCAP_pv | XEN_SYSCTL_PHYSCAP_hap
                         | XEN_SYSCTL_PHYSCAP_shadow | XEN_SYSCTL_PHYSCAP_directio
                         | XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share;
    info->total_pages = 1u << 22; /* 16 GiB */
    info->free_pages = 1u << 21;
    return 0;
}

long xc_sharing_freed_pages(xc_interface *xch)
{
    (void)xch;
    return 0;
}

long xc_sharing_used_frames(xc_interface *xch)
{
    (void)xch;
    return 0;
}

/*
 * The hypercall that makes a domain. Every check libxl_domain_create_new makes on a config
 * (libxl__domain_config_setdefault and what precedes the hypercall) runs before it, so a create
 * that gets here has been accepted by libxl as far as libxl can judge without Xen. It fails
 * (ENOSYS: there is no hypervisor) after writing one byte to the file descriptor named by
 * XENSHIM_CREATE_FD (if set), so a test tells "refused by libxl" from "accepted, then stopped at
 * the hypervisor" without parsing log text, even when libxl's failure path crashes afterwards.
 */
int xc_domain_create(xc_interface *xch, uint32_t *pdomid, struct xen_domctl_createdomain *config)
{
    const char *fd = getenv("XENSHIM_CREATE_FD");
    (void)xch; (void)pdomid; (void)config;
    if (fd && write(atoi(fd), "c", 1) != 1)
        abort();
    errno = ENOSYS;
    return -1;
}

/*
 * A read-only xenstore holding what every Xen host has from boot: cpupool 0 and domain 0's name
 * (libxl checks the pool a config names, and looks domain 0 up by name, before any hypercall).
 * Any other path does not exist.
 */
void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    static const char *const keys[][2] = {
        {"/local/pool/0/name", "Pool-0"},
        {"/local/domain/0/name", "Domain-0"},
    };
    (void)h; (void)t;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(path, keys[i][0]) == 0) {
            char *value = strdup(keys[i][1]);
            if (value && len)
                *len = (unsigned int)strlen(value);
            return value;
        }
    }
    errno = ENOENT;
    return NULL;
}

/*
 * The hypervisor's domain list: domain 0 alone (1 GiB, running), so libxl can list the host and
 * find that any other domid does not exist. Nothing here can create another domain.
 */
#define DOM0_PAGES (1u << 18) /* 1 GiB */

int xc_domain_getinfolist(xc_interface *xch, uint32_t first_domain, unsigned int max_domains,
                          xc_domaininfo_t *info)
{
    (void)xch;
    if (first_domain != 0 || max_domains == 0)
        return 0;
    memset(info, 0, sizeof(*info));
    info->domain = 0;
    info->flags = XEN_DOMINF_running;
    info->tot_pages = info->max_pages = DOM0_PAGES;
    info->nr_online_vcpus = 16;
    info->max_vcpu_id = 15;
    return 1;
}

/* No XSM/FLASK policy: libxl asks for every domain's security label and copes with ENOSYS. */
int xc_flask_sid_to_context(xc_interface *xch, int sid, char *buf, uint32_t size)
{
    (void)xch; (void)sid; (void)buf; (void)size;
    errno = ENOSYS;
    return -1;
}

/* Pausing a domain: only domain 0 exists, so any other domid is ESRCH, as Xen says; domain 0 is
 * not modelled (abort rather than make an answer up). */
int xc_domain_pause(xc_interface *xch, uint32_t domid)
{
    (void)xch;
    if (domid == 0)
        abort();
    errno = ESRCH;
    return -1;
}

/* xenstored computes a domain's path from its id alone, existing or not. */
char *xs_get_domain_path(struct xs_handle *h, unsigned int domid)
{
    char *path = NULL;
    (void)h;
    return asprintf(&path, "/local/domain/%u", domid) < 0 ? NULL : path;
}
