# mkfs/group/local.mk - libnwcgroup.a: the ranks of an MPI job that pack
# one image together (a group of one without --with-mpi); the only archive
# that includes <mpi.h>.  Uses libnwccommon.a only.
noinst_LIBRARIES += mkfs/group/libnwcgroup.a
mkfs_group_libnwcgroup_a_CPPFLAGS = $(AM_CPPFLAGS) $(MPI_CFLAGS)
mkfs_group_libnwcgroup_a_SOURCES = mkfs/group/group.c mkfs/group/group.h
