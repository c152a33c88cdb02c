"""cffi builder for ``libxl.hosts.binding._libxl``, the native module behind ``xen:///system``.

API (out-of-line) mode compiled against the installed ``<libxl.h>``: the C compiler decides the
struct layouts, which differ between Xen releases, so the declarations below stay opaque or
partial (``...;``). Configs and devices cross the boundary as libxl's own JSON
(``*_from_json`` / ``*_to_json``), never by filling structs field by field.

Three small C helpers live in the module because Python cannot express them directly:
a xentoollog logger (its ``vmessage`` takes a ``va_list``) that formats each line and hands it to a
Python callback; the childproc mode (libxl keeps a pointer to the hooks, so they must be static);
and one step of the event loop that also polls a wake-up pipe, so the event thread can be stopped
before the context is freed (``libxl_event_wait`` cannot be interrupted).

``setup.py`` builds this only when the headers are found (see ``headers_available``).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from cffi import FFI

#: Named under the installed package (setup.py maps the layers below ``xenreconcile``), so an
#: installed copy puts the module there and claims no top-level ``libxl``; the binding imports it
#: by its private name ``libxl.hosts.binding._libxl`` (the init symbol only uses the last part).
MODULE_NAME = "xenreconcile.libxl.hosts.binding._libxl"
#: Accepted by libxl 4.13 ... 4.20; below it several calls become inline wrappers without ao_how.
API_VERSION = "0x041300"

CDEF = """
typedef struct libxl__ctx libxl_ctx;
typedef struct xentoollog_logger xentoollog_logger;
typedef uint64_t libxl_ev_user;
typedef struct libxl__evgen_domain_death libxl_evgen_domain_death;

typedef struct { ...; } libxl_domain_config;
typedef struct { ...; } libxl_device_disk;
typedef struct { ...; } libxl_device_nic;
typedef struct { ...; } libxl_dominfo;
typedef struct { ...; } libxl_physinfo;
typedef struct { ...; } libxl_version_info;
typedef struct { uint32_t size; uint8_t *map; ...; } libxl_bitmap;
typedef enum { LIBXL_EVENT_TYPE_DOMAIN_SHUTDOWN = 1, LIBXL_EVENT_TYPE_DOMAIN_DEATH = 2, ... }
    libxl_event_type;
typedef struct { uint32_t domid; uint64_t for_user; libxl_event_type type; ...; } libxl_event;

#define LIBXL_VERSION ...
#define ERROR_NOT_READY ...
#define ERROR_DOMAIN_NOTFOUND ...

int libxl_ctx_free(libxl_ctx *ctx);
const char *libxl_error_to_string(int rc);
void free(void *ptr);

libxl_dominfo *libxl_list_domain(libxl_ctx *ctx, int *nb_domain_out);
void libxl_dominfo_list_free(libxl_dominfo *list, int nb_domain);
void libxl_dominfo_init(libxl_dominfo *p);
void libxl_dominfo_dispose(libxl_dominfo *p);
int libxl_domain_info(libxl_ctx *ctx, libxl_dominfo *info_r, uint32_t domid);
char *libxl_dominfo_to_json(libxl_ctx *ctx, libxl_dominfo *p);
char *libxl_domid_to_name(libxl_ctx *ctx, uint32_t domid);

struct xs_handle;
struct xs_handle *xs_open(unsigned long flags);
void xs_close(struct xs_handle *xsh);
void *xs_read(struct xs_handle *h, uint32_t t, const char *path, unsigned int *len);

void libxl_physinfo_init(libxl_physinfo *p);
void libxl_physinfo_dispose(libxl_physinfo *p);
int libxl_get_physinfo(libxl_ctx *ctx, libxl_physinfo *physinfo);
char *libxl_physinfo_to_json(libxl_ctx *ctx, libxl_physinfo *p);
const libxl_version_info *libxl_get_version_info(libxl_ctx *ctx);
char *libxl_version_info_to_json(libxl_ctx *ctx, libxl_version_info *p);

void libxl_domain_config_init(libxl_domain_config *d_config);
void libxl_domain_config_dispose(libxl_domain_config *d_config);
int libxl_domain_config_from_json(libxl_ctx *ctx, libxl_domain_config *p, const char *s);
char *libxl_domain_config_to_json(libxl_ctx *ctx, libxl_domain_config *p);
int libxl_retrieve_domain_configuration(libxl_ctx *ctx, uint32_t domid, libxl_domain_config *d_config,
                                        const void *ao_how);
int libxl_domain_create_new(libxl_ctx *ctx, libxl_domain_config *d_config, uint32_t *domid,
                            const void *ao_how, const void *aop_console_how);
int libxl_domain_unpause(libxl_ctx *ctx, uint32_t domid, const void *ao_how);
int libxl_domain_pause(libxl_ctx *ctx, uint32_t domid, const void *ao_how);
int libxl_domain_shutdown(libxl_ctx *ctx, uint32_t domid, const void *ao_how);
int libxl_domain_destroy(libxl_ctx *ctx, uint32_t domid, const void *ao_how);

/* host lifecycle: save images, restore, core dumps (what xl save / restore / dump-core call) */
typedef struct { int checkpointed_stream; uint32_t stream_version; ...; } libxl_domain_restore_params;
#define LIBXL_SUSPEND_LIVE ...
void libxl_domain_restore_params_init(libxl_domain_restore_params *p);
void libxl_domain_restore_params_dispose(libxl_domain_restore_params *p);
int libxl_domain_suspend(libxl_ctx *ctx, uint32_t domid, int fd, int flags, const void *ao_how);
int libxl_domain_resume(libxl_ctx *ctx, uint32_t domid, int suspend_cancel, const void *ao_how);
int libxl_domain_create_restore(libxl_ctx *ctx, libxl_domain_config *d_config, uint32_t *domid,
                                int restore_fd, int send_back_fd,
                                const libxl_domain_restore_params *params, const void *ao_how,
                                const void *aop_console_how);
int libxl_domain_core_dump(libxl_ctx *ctx, uint32_t domid, const char *filename, const void *ao_how);

void libxl_device_disk_init(libxl_device_disk *p);
void libxl_device_disk_dispose(libxl_device_disk *p);
int libxl_device_disk_from_json(libxl_ctx *ctx, libxl_device_disk *p, const char *s);
int libxl_device_disk_add(libxl_ctx *ctx, uint32_t domid, libxl_device_disk *disk, const void *ao_how);
int libxl_device_disk_remove(libxl_ctx *ctx, uint32_t domid, libxl_device_disk *disk, const void *ao_how);
int libxl_cdrom_insert(libxl_ctx *ctx, uint32_t domid, libxl_device_disk *disk, const void *ao_how);
void libxl_device_nic_init(libxl_device_nic *p);
void libxl_device_nic_dispose(libxl_device_nic *p);
int libxl_device_nic_from_json(libxl_ctx *ctx, libxl_device_nic *p, const char *s);
int libxl_device_nic_add(libxl_ctx *ctx, uint32_t domid, libxl_device_nic *nic, const void *ao_how);
int libxl_device_nic_remove(libxl_ctx *ctx, uint32_t domid, libxl_device_nic *nic, const void *ao_how);

int libxl_set_memory_target(libxl_ctx *ctx, uint32_t domid, int64_t target_memkb, int relative,
                            int enforce);
void libxl_bitmap_init(libxl_bitmap *map);
int libxl_bitmap_alloc(libxl_ctx *ctx, libxl_bitmap *bitmap, int n_bits);
void libxl_bitmap_set(libxl_bitmap *bitmap, int bit);
void libxl_bitmap_dispose(libxl_bitmap *map);
int libxl_set_vcpuonline(libxl_ctx *ctx, uint32_t domid, libxl_bitmap *cpumap, const void *ao_how);

/* live tuning: xl vcpu-pin, xl sched-credit2, xl mem-max; and the live values they change */
typedef struct { ...; } libxl_vcpuinfo;
typedef struct { int weight; int cap; ...; } libxl_domain_sched_params;
int libxl_set_vcpuaffinity(libxl_ctx *ctx, uint32_t domid, uint32_t vcpuid,
                           const libxl_bitmap *cpumap_hard, const libxl_bitmap *cpumap_soft);
void libxl_domain_sched_params_init(libxl_domain_sched_params *p);
void libxl_domain_sched_params_dispose(libxl_domain_sched_params *p);
int libxl_domain_sched_params_get(libxl_ctx *ctx, uint32_t domid, libxl_domain_sched_params *params);
int libxl_domain_sched_params_set(libxl_ctx *ctx, uint32_t domid, const libxl_domain_sched_params *params);
char *libxl_domain_sched_params_to_json(libxl_ctx *ctx, libxl_domain_sched_params *p);
int libxl_domain_setmaxmem(libxl_ctx *ctx, uint32_t domid, uint64_t target_memkb);
libxl_vcpuinfo *libxl_list_vcpu(libxl_ctx *ctx, uint32_t domid, int *nb_vcpu, int *nr_cpus_out);
void libxl_vcpuinfo_list_free(libxl_vcpuinfo *list, int nr);
char *libxl_vcpuinfo_to_json(libxl_ctx *ctx, libxl_vcpuinfo *p);

int libxl_evenable_domain_death(libxl_ctx *ctx, uint32_t domid, libxl_ev_user user,
                                libxl_evgen_domain_death **evgen_out);
void libxl_evdisable_domain_death(libxl_ctx *ctx, libxl_evgen_domain_death *evgen);
void libxl_event_free(libxl_ctx *ctx, libxl_event *event);

/* helpers defined in SOURCE below */
int xr_ctx_alloc(libxl_ctx **pctx, void *user, int min_level, xentoollog_logger **logger_out);
void xr_logger_free(xentoollog_logger *logger);
void xr_childproc_setmode(libxl_ctx *ctx);
int xr_event_shutdown_reason(const libxl_event *event);
int xr_wait_event(libxl_ctx *ctx, int wakefd, int timeout_ms, libxl_event **event_out);

extern "Python" void xr_log_line(void *user, int level, int errnoval, const char *context,
                                 const char *message);
"""

SOURCE = f"""
#define LIBXL_API_VERSION {API_VERSION}
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <xentoollog.h>
#include <xenstore.h>
#include <libxl.h>
#include <libxl_utils.h>
#include <libxl_event.h>

static void xr_log_line(void *user, int level, int errnoval, const char *context, const char *message);

typedef struct {{
    xentoollog_logger vtable;
    void *user;
    int min_level;
}} xr_logger;

static void xr_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval,
                        const char *context, const char *format, va_list al)
{{
    char line[4096];
    if ((int)level < ((xr_logger *)lg)->min_level)
        return;
    vsnprintf(line, sizeof line, format, al);
    xr_log_line(((xr_logger *)lg)->user, (int)level, errnoval, context, line);
}}

static void xr_progress(xentoollog_logger *lg, const char *context, const char *doing_what,
                        int percent, unsigned long done, unsigned long total)
{{
    (void)lg; (void)context; (void)doing_what; (void)percent; (void)done; (void)total;
}}

static void xr_destroy(xentoollog_logger *lg) {{ free(lg); }}

static int xr_ctx_alloc(libxl_ctx **pctx, void *user, int min_level, xentoollog_logger **logger_out)
{{
    xr_logger *lg = calloc(1, sizeof *lg);
    int rc;
    if (!lg)
        return ERROR_NOMEM;
    lg->vtable.vmessage = xr_vmessage;
    lg->vtable.progress = xr_progress;
    lg->vtable.destroy = xr_destroy;
    lg->user = user;
    lg->min_level = min_level;
    rc = libxl_ctx_alloc(pctx, LIBXL_VERSION, 0, &lg->vtable);
    if (rc) {{
        free(lg);
        *logger_out = NULL;
    }} else {{
        *logger_out = &lg->vtable;
    }}
    return rc;
}}

static void xr_logger_free(xentoollog_logger *logger) {{ xtl_logger_destroy(logger); }}

static const libxl_childproc_hooks xr_childproc_hooks = {{
    .chldowner = libxl_sigchld_owner_libxl_always_selective_reap,
}};

static void xr_childproc_setmode(libxl_ctx *ctx)
{{
    libxl_childproc_setmode(ctx, &xr_childproc_hooks, NULL);
}}

static int xr_event_shutdown_reason(const libxl_event *event)
{{
    return event->u.domain_shutdown.shutdown_reason;
}}

/* One wait for a libxl event, interruptible through wakefd.
 * Returns 0 with *event_out set, 1 when wakefd is readable, 2 on timeout, or a libxl error. */
static int xr_wait_event(libxl_ctx *ctx, int wakefd, int timeout_ms, libxl_event **event_out)
{{
    struct pollfd *fds = NULL;
    int size = 16;
    for (;;) {{
        struct timeval now;
        int nfds, timeout = timeout_ms, rc;
        rc = libxl_event_check(ctx, event_out, LIBXL_EVENTMASK_ALL, NULL, NULL);
        if (rc != ERROR_NOT_READY) {{
            free(fds);
            return rc;
        }}
        for (;;) {{
            struct pollfd *grown = realloc(fds, (size_t)(size + 1) * sizeof *fds);
            if (!grown) {{
                free(fds);
                return ERROR_NOMEM;
            }}
            fds = grown;
            nfds = size;
            gettimeofday(&now, NULL);
            rc = libxl_osevent_beforepoll(ctx, &nfds, fds + 1, &timeout, now);
            if (rc != ERROR_BUFFERFULL)
                break;
            size = nfds;
        }}
        if (rc) {{
            free(fds);
            return rc;
        }}
        fds[0].fd = wakefd;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        rc = poll(fds, (nfds_t)nfds + 1, timeout);
        if (rc < 0 && errno != EINTR) {{
            free(fds);
            return ERROR_FAIL;
        }}
        if (fds[0].revents) {{
            free(fds);
            return 1;
        }}
        gettimeofday(&now, NULL);
        libxl_osevent_afterpoll(ctx, nfds, fds + 1, now);
        if (rc == 0 && timeout == timeout_ms) {{
            free(fds);
            return 2;
        }}
    }}
}}
"""

_HEADER = "libxl.h"


def _pkg_config(*args: str) -> list[str]:
    if shutil.which("pkg-config") is None:
        return []
    proc = subprocess.run(["pkg-config", *args, "xenlight", "xentoollog", "xenstore"], capture_output=True,
                          text=True, check=False)
    return proc.stdout.split() if proc.returncode == 0 else []


def include_dirs() -> list[str]:
    return [flag[2:] for flag in _pkg_config("--cflags-only-I")]


def headers_available() -> bool:
    """True when ``<libxl.h>`` can be found: only then is the native module worth building."""
    candidates = [*include_dirs(), "/usr/include", "/usr/local/include"]
    return any(os.path.exists(os.path.join(d, _HEADER)) for d in candidates)


def make_builder() -> FFI:
    builder = FFI()
    builder.cdef(CDEF)
    builder.set_source(
        MODULE_NAME,
        SOURCE,
        libraries=["xenlight", "xentoollog", "xenstore"],
        include_dirs=include_dirs(),
        # A failed compile must not fail `pip install`: xen:///system then reports why at run time.
        optional=True,
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
