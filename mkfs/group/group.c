/* SPDX-License-Identifier: MIT */
/* group.c - the ranks of an MPI job, or a group of one without MPI. */
#include "codec/common/base.h"

#include <limits.h>
#include <stdlib.h>
#include <time.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

#include "codec/common/log.h"
#include "mkfs/group/group.h"

/* MPI counts are ints: larger messages go in pieces of this many bytes. */
#define PIECE (1u << 30)

static unsigned g_rank, g_size = 1;

/* Whether an MPI launcher (Open MPI, PMI or PMIx: MPICH, Slurm) started
 * this process. */
static bool launched(void)
{
	static const char *const vars[] = {
		"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
	};

	for (size_t i = 0; i < NWC_ARRAY_SIZE(vars); i++)
		if (getenv(vars[i]))
			return true;
	return false;
}

bool nwc_group_have_mpi(void)
{
#ifdef HAVE_MPI
	return true;
#else
	return false;
#endif
}

#ifdef HAVE_MPI

static bool g_mpi;		/* MPI_Init_thread() was called */

/*
 * Waits for @req, sleeping between polls: MPI's own waits spin, and a
 * rank's merger thread waiting for the next sum would take a core from
 * the threads that compute it.  A wait grows from 20 us to 1 ms, small
 * against the seconds a calibration block or a tensor takes.
 */
static void wait_req(MPI_Request *req)
{
	struct timespec ts = { 0, 20000 };
	int done = 0;

	for (;;) {
		MPI_Test(req, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		nanosleep(&ts, NULL);
		ts.tv_nsec = NWC_MIN(ts.tv_nsec * 2, 1000000L);
	}
}

int nwc_group_init(int *argc, char ***argv)
{
	int provided, rank, size;

	if (!launched())
		return 0;
	MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
	g_mpi = true;
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	if (provided < MPI_THREAD_SERIALIZED && size > 1) {
		nwc_err("this MPI library cannot serve worker threads (MPI_THREAD_SERIALIZED)");
		return -ENOTSUP;
	}
	g_rank = (unsigned)rank;
	g_size = (unsigned)size;
	return 0;
}

void nwc_group_finish(void)
{
	if (g_mpi)
		MPI_Finalize();
	g_mpi = false;
}

void nwc_group_abort(int status)
{
	if (g_mpi)
		MPI_Abort(MPI_COMM_WORLD, status);
}

enum op { OP_SEND, OP_RECV, OP_BCAST };

/*
 * One transfer of @len bytes at @buf with @peer (the destination, the
 * source or the root), in pieces MPI's int counts can hold.
 */
static void transfer(enum op op, unsigned peer, int tag, void *buf,
		     size_t len)
{
	char *p = buf;

	assert(g_size > 1 && peer < g_size);
	do {
		int n = (int)NWC_MIN(len, (size_t)PIECE);
		MPI_Request req;

		if (op == OP_SEND)
			MPI_Isend(p, n, MPI_BYTE, (int)peer, tag,
				  MPI_COMM_WORLD, &req);
		else if (op == OP_RECV)
			MPI_Irecv(p, n, MPI_BYTE, (int)peer, tag,
				  MPI_COMM_WORLD, &req);
		else
			MPI_Ibcast(p, n, MPI_BYTE, (int)peer, MPI_COMM_WORLD,
				   &req);
		wait_req(&req);
		p += n;
		len -= (size_t)n;
	} while (len);
}

void nwc_group_send(unsigned to, enum nwc_group_tag tag, const void *buf,
		    size_t len)
{
	/* MPI_Isend() only reads the buffer. */
	transfer(OP_SEND, to, (int)tag, (void *)(uintptr_t)buf, len);
}

void nwc_group_recv(unsigned from, enum nwc_group_tag tag, void *buf,
		    size_t len)
{
	transfer(OP_RECV, from, (int)tag, buf, len);
}

void nwc_group_bcast(unsigned root, void *buf, size_t len)
{
	if (g_size > 1)
		transfer(OP_BCAST, root, 0, buf, len);
}

int nwc_group_min(int v)
{
	int out = v;

	MPI_Request req;

	if (g_size > 1) {
		MPI_Iallreduce(&v, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD,
			       &req);
		wait_req(&req);
	}
	return out;
}

#else /* !HAVE_MPI */

int nwc_group_init(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (!launched())
		return 0;
	nwc_err("started by an MPI launcher, but this build has no MPI (configure --with-mpi)");
	return -ENOTSUP;
}

void nwc_group_finish(void)
{
}

void nwc_group_abort(int status)
{
	(void)status;
}

/* A group of one never sends: every caller checks nwc_group_size(). */
void nwc_group_send(unsigned to, enum nwc_group_tag tag, const void *buf,
		    size_t len)
{
	(void)to, (void)tag, (void)buf, (void)len;
	assert(!"nwc_group_send() in a group of one");
}

void nwc_group_recv(unsigned from, enum nwc_group_tag tag, void *buf,
		    size_t len)
{
	(void)from, (void)tag, (void)buf, (void)len;
	assert(!"nwc_group_recv() in a group of one");
}

void nwc_group_bcast(unsigned root, void *buf, size_t len)
{
	(void)root, (void)buf, (void)len;
}

int nwc_group_min(int v)
{
	return v;
}

#endif /* HAVE_MPI */

unsigned nwc_group_rank(void)
{
	return g_rank;
}

unsigned nwc_group_size(void)
{
	return g_size;
}
