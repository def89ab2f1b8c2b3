/* SPDX-License-Identifier: MIT */
/*
 * The control socket: QMP-compatible JSON over a UNIX socket, as QEMU speaks it
 * (docs/interop/qmp-spec.rst), so that management stacks and any QMP client can drive a
 * pvmem machine. Commands: qmp_capabilities, query-commands, query-version,
 * query-memory-devices, qom-set/qom-get (requested-size, size, block-size, max-size, node,
 * memaddr on /machine/peripheral/<id>), balloon, query-balloon, device_add/device_del
 * (vfio-pci, nvme, vhost-vdpa-device-pci stand-ins backed by DMA containers), system_reset,
 * quit, and pvmem's own query-memlock, query-discard, x-pvmem-audit, x-pvmem-query-hostdevs,
 * x-pvmem-viommu. Events: MEMORY_DEVICE_SIZE_CHANGE, BALLOON_CHANGE, DEVICE_DELETED, RESET,
 * SHUTDOWN and X_PVMEM_UNPLUGGED_ACCESS. Errors are QMP's (GenericError, CommandNotFound,
 * DeviceNotFound, DeviceNotActive) and come before any side effect.
 */
#ifndef PVMEM_CONTROL_H
#define PVMEM_CONTROL_H

#include <pvmem/core.h>
#include <pvmem/machine.h>

#ifdef __cplusplus
extern "C" {
#endif

struct pvm_control;

/* Listen on @spec ("unix:PATH" as QEMU's -qmp spells it, or a bare PATH) for machine @m, with
 * the sockets in @m's loop (pvm_machine_run_once() serves them). The control installs itself
 * as @m's event handler; an owner that needs events too installs its own handler afterwards
 * and forwards each event with pvm_control_event(). -EINVAL (spec), -EEXIST (a non-socket file
 * at PATH), -errno of bind/listen. */
PVM_EXPORT int pvm_control_new(struct pvm_machine *m, const char *spec, struct pvm_control **out,
			       struct pvm_error *err) PVM_MUST_CHECK;
/* Close the clients and the socket (unlinking it). NULL is fine. */
PVM_EXPORT void pvm_control_free(struct pvm_control *c);
/* Send a machine event to every negotiated client as its QMP event. */
PVM_EXPORT void pvm_control_event(struct pvm_control *c, const struct pvm_machine_event *ev);

#ifdef __cplusplus
}
#endif
#endif
