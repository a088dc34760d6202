/* SPDX-License-Identifier: MIT */
/*
 * group.h - the processes that pack one image together.  mkfs.nwc started
 * by mpirun or srun, in a build configured --with-mpi, is one rank of an
 * MPI job; otherwise, or when no MPI launcher started it, it is a group of
 * one and the calls below move nothing.  The only file that includes
 * <mpi.h> is group.c.
 *
 *	nwc_group_init(&argc, &argv);		(main(), before any thread)
 *	if (nwc_group_rank() == 0) ... write the image ...
 *	nwc_group_send(1, NWC_GROUP_TAG_JOB, buf, len);
 *	nwc_group_finish();
 *
 * Messages between two ranks with one tag arrive in the order they were
 * sent.  Any failure of the transport ends the whole job (MPI's default
 * error handler), so the calls below return nothing.
 *
 * Thread safety: rank and size are constants after nwc_group_init().
 * Messages may be sent from any thread, but never from two at once
 * (MPI_THREAD_SERIALIZED): the callers order them.
 */
#ifndef NWC_GROUP_H
#define NWC_GROUP_H

#include "codec/common/base.h"

/* Tags keep the kinds of messages apart. */
enum nwc_group_tag {
	NWC_GROUP_TAG_SUM = 1,		/* calibration: a running sum */
	NWC_GROUP_TAG_JOB,		/* packing: a coded tensor for rank 0 */
};

/*
 * nwc_group_init() - join the MPI job this process was started in, if any
 * (an MPI launcher's environment, such as OMPI_COMM_WORLD_SIZE or
 * PMI_SIZE, says so).  Returns 0, or -ENOTSUP when a launcher started this
 * process but the build has no MPI (logged: the ranks would each write
 * the image alone).
 */
int nwc_group_init(int *argc, char ***argv);

/* nwc_group_finish() - leave the job; after nwc_group_init() only. */
void nwc_group_finish(void);

/* nwc_group_abort() - end every rank of the job with @status (a rank
 * that failed would otherwise leave the others waiting for it). */
void nwc_group_abort(int status);

/* This process's rank, from 0, and the number of ranks. */
unsigned nwc_group_rank(void);
unsigned nwc_group_size(void);

/* Whether this build can join an MPI job (for --version). */
bool nwc_group_have_mpi(void);

/* Send @len bytes to rank @to, and receive exactly @len from @from. */
void nwc_group_send(unsigned to, enum nwc_group_tag tag, const void *buf,
		    size_t len);
void nwc_group_recv(unsigned from, enum nwc_group_tag tag, void *buf,
		    size_t len);

/* Every rank gets rank @root's @len bytes at @buf. */
void nwc_group_bcast(unsigned root, void *buf, size_t len);

/* The smallest of every rank's @v, on every rank (errors are negative:
 * all ranks learn whether one failed). */
int nwc_group_min(int v);

#endif /* NWC_GROUP_H */
