/* SPDX-License-Identifier: MIT */
/* An empty unit for modules whose first file has not landed yet (meson needs one source). */
typedef int pvm_placeholder_unit;
