/* SPDX-License-Identifier: MIT */
/* libpvmem: include this for everything (cc app.c $(pkg-config --cflags --libs libpvmem)). */
#ifndef PVMEM_PVMEM_H
#define PVMEM_PVMEM_H

#include <pvmem/core.h>
#include <pvmem/bitmap.h>
#include <pvmem/mem.h>
#include <pvmem/memslot.h>
#include <pvmem/enforce.h>
#include <pvmem/domain.h>
#include <pvmem/memlock.h>
#include <pvmem/discard.h>
#include <pvmem/dma.h>
#include <pvmem/virtio.h>
#include <pvmem/virtio-mem.h>
#include <pvmem/balloon.h>
#include <pvmem/machine.h>
#include <pvmem/control.h>

#endif
