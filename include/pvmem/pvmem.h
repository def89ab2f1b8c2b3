/* SPDX-License-Identifier: MIT */
/* libpvmem: include this for everything. */
#ifndef PVMEM_PVMEM_H
#define PVMEM_PVMEM_H

#include <pvmem/core.h>
#include <pvmem/bitmap.h>
#if __has_include(<pvmem/mem.h>)
#include <pvmem/mem.h>
#endif
#if __has_include(<pvmem/memslot.h>)
#include <pvmem/memslot.h>
#endif
#if __has_include(<pvmem/discard.h>)
#include <pvmem/discard.h>
#endif
#if __has_include(<pvmem/dma.h>)
#include <pvmem/dma.h>
#endif
#if __has_include(<pvmem/virtio.h>)
#include <pvmem/virtio.h>
#endif
#if __has_include(<pvmem/virtio-mem.h>)
#include <pvmem/virtio-mem.h>
#endif
#if __has_include(<pvmem/balloon.h>)
#include <pvmem/balloon.h>
#endif
#if __has_include(<pvmem/memlock.h>)
#include <pvmem/memlock.h>
#endif
#if __has_include(<pvmem/machine.h>)
#include <pvmem/machine.h>
#endif
#if __has_include(<pvmem/control.h>)
#include <pvmem/control.h>
#endif

#endif
