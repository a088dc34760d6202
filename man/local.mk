# man/local.mk - hand-written man(7) pages, linted by tests/man.sh.
dist_man_MANS += man/mkfs.nwc.1 man/fsck.nwc.1 man/nwc.1 man/nwc-train.1 \
	man/nwc.5
if WITH_FUSE
dist_man_MANS += man/nwcfs.1
else
EXTRA_DIST += man/nwcfs.1
endif
