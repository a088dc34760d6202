/* SPDX-License-Identifier: MIT */
/*
 * info.h - `nwc info IMAGE [--json]` (info.c): what an image holds and
 * how it was made.  Called by nwc's main() with the arguments after
 * "info"; returns an exit status.  Not thread-safe (getopt).
 */
#ifndef NWC_INFO_H
#define NWC_INFO_H

int nwc_info_main(int argc, char **argv);

#endif /* NWC_INFO_H */
