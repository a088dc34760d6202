#!/bin/bash
# SPDX-License-Identifier: MIT
# readpath.sh - the read path against squashfuse: one BF16 model file read
# through nwcfs (lossless and lossy 4-bit images, the lossy one with the
# default and with the linear codec models), squashfuse and
# squashfuse_ll (a squashfs of the same directory, zstd -19, 1 MiB blocks),
# cold and warm, by 1 and 4 readers, interleaved round by round; random
# 4 KiB read latency; transformers' from_pretrained() from each mount; and
# where the nwcfs daemon spends its time (perf), so the next step is chosen
# from data.
#
# Run by `make bench` and `make bench-read`, which set top_srcdir and
# top_builddir.  Prints Markdown on stdout and writes it to
# bench/out/readpath.md; progress goes to stderr.  Needs root (page cache
# drops), FUSE, squashfuse and mksquashfs (Debian: squashfuse,
# squashfs-tools); perf and a python3 with torch and transformers are
# optional.  Environment:
#   NWC_READ_SIZE    tests/gen_model --size of the model (default 100m)
#   NWC_READ_ROUNDS  interleaved rounds (default 5)
#   NWC_PYTHON       the python3 for from_pretrained (default: the first
#                    of python3 and /usr/bin/python3 with the stack)
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

. "${top_srcdir:-.}/tests/lib.sh"
. "${top_srcdir:-.}/bench/bench-lib.sh"

RB=$B/bench/readbench
CACHE=$B/bench/cache
OUT=$B/bench/out
RES=$OUT/readpath.md
SIZE=${NWC_READ_SIZE:-100m}
ROUNDS=${NWC_READ_ROUNDS:-5}
READERS=4
RAND_COUNT=2000

for p in "$MKFS" "$NWCFS" "$RB" "$GEN"; do
	[ -x "$p" ] || die "$p is not built; run make all bench/readbench tests/gen_model"
done
[ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ] ||
	die "needs root and a writable /proc/sys/vm/drop_caches (cold reads)"
for c in squashfuse squashfuse_ll mksquashfs fusermount3 mountpoint; do
	command -v $c >/dev/null ||
		die "$c not found (Debian: apt-get install squashfuse squashfs-tools fuse3)"
done
drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }
TICK=$(getconf CLK_TCK)
mkdir -p "$CACHE" "$OUT" || die "cannot create $CACHE or $OUT"
t_workdir

# --- inputs ------------------------------------------------------------------
MODEL=$CACHE/gen-$SIZE-bf16
if [ ! -d "$MODEL" ] || [ "$GEN" -nt "$MODEL" ]; then
	note "generating the $SIZE BF16 model (cached in $MODEL)"
	rm -rf "$MODEL" "$MODEL.tmp"
	"$GEN" --size "$SIZE" --dtype BF16 "$MODEL.tmp" >/dev/null &&
		mv "$MODEL.tmp" "$MODEL" || die "tests/gen_model --size $SIZE failed"
fi
FILE=model.safetensors
[ -f "$MODEL/$FILE" ] || FILE=$(cd "$MODEL" && ls *.safetensors | head -n 1)
BYTES=$(fsize "$MODEL/$FILE")

note "images: nwcfs lossless, nwcfs --bits 4 (default and linear codec models), squashfs (zstd -19, 1 MiB blocks)"
"$MKFS" -q --lossless "$MODEL" "$W/lossless.nwc" || die "mkfs.nwc --lossless failed"
"$MKFS" -q --bits 4 "$MODEL" "$W/lossy.nwc" || die "mkfs.nwc --bits 4 failed"
"$MKFS" -q --bits 4 --model-set linear "$MODEL" "$W/lossy-lin.nwc" ||
	die "mkfs.nwc --bits 4 --model-set linear failed"
mksquashfs "$MODEL" "$W/model.sqfs" -comp zstd -Xcompression-level 19 -b 1M \
	-noappend -quiet >/dev/null || die "mksquashfs failed"

SYSTEMS=(nwc-lossless nwc-lossy nwc-lossy-lin squashfuse squashfuse_ll)
declare -A IMG=([nwc-lossless]=$W/lossless.nwc [nwc-lossy]=$W/lossy.nwc
	[nwc-lossy-lin]=$W/lossy-lin.nwc
	[squashfuse]=$W/model.sqfs [squashfuse_ll]=$W/model.sqfs)
declare -A LABEL=([nwc-lossless]="nwcfs lossless" [nwc-lossy]="nwcfs lossy 4-bit"
	[nwc-lossy-lin]="nwcfs lossy 4-bit, linear models"
	[squashfuse]="squashfuse" [squashfuse_ll]="squashfuse_ll")

# mount_fs SYSTEM [CPU]: mount it at $W/mnt, the daemon in the foreground
# as DPID, on CPU alone if given.
MNT=$W/mnt
mount_fs() {
	local s=$1 pin=() i=0
	[ -n "${2:-}" ] && pin=(taskset -c "$2")
	mkdir -p "$MNT"
	case $s in
	nwc-*) "${pin[@]}" "$NWCFS" -f "${IMG[$s]}" "$MNT" 2>>"$W/daemon.log" & ;;
	*) "${pin[@]}" "$s" -f "${IMG[$s]}" "$MNT" 2>>"$W/daemon.log" & ;;
	esac
	DPID=$!
	NWC_PIDS="$NWC_PIDS $DPID"
	until mountpoint -q "$MNT"; do
		kill -0 "$DPID" 2>/dev/null || die "$s did not mount: $(tail -n 3 "$W/daemon.log")"
		[ $i -ge 300 ] && die "$s: no mount after 30 s"
		sleep 0.1
		i=$((i + 1))
	done
}

umount_fs() {
	fusermount3 -u "$MNT" || die "fusermount3 -u $MNT failed"
	wait "$DPID" 2>/dev/null
}

# CPU seconds of the daemon so far (all threads, user and system).
daemon_cpu() {
	awk -v t="$TICK" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$DPID/stat"
}

# seq_run SYSTEM cold|warm READERS: sets V to "MBPS CPU_S_PER_GB".
seq_run() {
	local s=$1 temp=$2 n=$3 c0 c1 out
	if [ "$temp" = cold ]; then
		drop_caches
	else
		cat "${IMG[$s]}" >/dev/null	# the image in the page cache
	fi
	mount_fs "$s"
	c0=$(daemon_cpu)
	out=$("$RB" seq --bs 1M --procs "$n" "$MNT/$FILE") ||
		die "readbench seq on $s failed"
	c1=$(daemon_cpu)
	umount_fs
	V="$(kv MBps "$out") $(calc '%.3f' "($c1 - $c0 + $(kv cpu "$out")) / ($BYTES / 1e9)")"
}

# stats VALUES...: "median [min-max]" of numbers.
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		if (NR > 1) printf "%.0f [%.0f-%.0f]", m, v[1], v[NR]
		else printf "%.0f", m }'
}
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# --- sequential reads, interleaved ---------------------------------------------
declare -A MBPS CPU
CASES=("cold 1" "cold 2" "cold $READERS" "warm 1" "warm 2" "warm $READERS")
for r in $(seq "$ROUNDS"); do
	for s in "${SYSTEMS[@]}"; do
		for c in "${CASES[@]}"; do
			set -- $c
			note "round $r of $ROUNDS: ${LABEL[$s]}, $1, $2 reader(s)"
			seq_run "$s" "$1" "$2"
			set -- $V
			MBPS[$s/$c]="${MBPS[$s/$c]:-} $1"
			CPU[$s/$c]="${CPU[$s/$c]:-} $2"
		done
	done
	note "round $r of $ROUNDS: cat of the original from the page cache"
	cat "$MODEL/$FILE" >/dev/null
	out=$("$RB" seq --bs 1M "$MODEL/$FILE") || die "readbench on the original failed"
	MBPS[cat]="${MBPS[cat]:-} $(kv MBps "$out")"
	CPU[cat]="${CPU[cat]:-} $(calc '%.3f' "$(kv cpu "$out") / ($BYTES / 1e9)")"
done

# --- one core: the daemon on CPU 0, the reader on CPU 1, warm ---------------------
# The whole file, and the linear layers alone (the bytes a lossy image
# decodes with the neural codec; the embeddings stay lossless).
read -r LIN_OFF LIN_LEN < <(python3 - "$MODEL/$FILE" <<'EOF'
import json, struct, sys
f = open(sys.argv[1], "rb")
n = struct.unpack("<Q", f.read(8))[0]
h = json.loads(f.read(n))
r = [v["data_offsets"] for k, v in h.items() if ".layers." in k]
print(8 + n + min(a for a, b in r), max(b for a, b in r) - min(a for a, b in r))
EOF
) || die "cannot read the header of $MODEL/$FILE"
declare -A CORE
CORE_CASES=("whole" "layers")
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	for r in $(seq "$ROUNDS"); do
		for s in "${SYSTEMS[@]}"; do
			for c in "${CORE_CASES[@]}"; do
				note "round $r of $ROUNDS: ${LABEL[$s]} on one core, $c"
				cat "${IMG[$s]}" >/dev/null
				mount_fs "$s" 0
				if [ "$c" = whole ]; then
					out=$(taskset -c 1 "$RB" seq --bs 1M "$MNT/$FILE")
				else
					out=$(taskset -c 1 "$RB" seq --bs 1M --offset "$LIN_OFF" \
						--length "$LIN_LEN" "$MNT/$FILE")
				fi || die "readbench on one core failed on $s"
				umount_fs
				CORE[$s/$c]="${CORE[$s/$c]:-} $(kv MBps "$out")"
			done
		done
	done
fi

# --- random 4 KiB reads, cold ------------------------------------------------------
declare -A RAND
for s in "${SYSTEMS[@]}"; do
	note "${LABEL[$s]}: $RAND_COUNT random 4 KiB reads, cold mount"
	drop_caches
	mount_fs "$s"
	out=$("$RB" rand --count $RAND_COUNT --seed 1 --time 60 "$MNT/$FILE") ||
		die "readbench rand on $s failed"
	umount_fs
	RAND[$s]="$(kv p50_us "$out") / $(kv p99_us "$out")"
done

# --- transformers' from_pretrained --------------------------------------------------
PY=
for py in ${NWC_PYTHON:-python3 /usr/bin/python3}; do
	if "$py" -c 'import torch, transformers' 2>/dev/null; then
		PY=$py
		break
	fi
done
declare -A LOAD
load_time() {
	"$PY" - "$1" <<'EOF'
import sys, time, torch, transformers
transformers.logging.set_verbosity_error()
t = time.monotonic()
m = transformers.AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.bfloat16)
print("%.2f" % (time.monotonic() - t))
EOF
}
if [ -n "$PY" ] && [ -f "$MODEL/config.json" ]; then
	for r in $(seq "$ROUNDS"); do
		note "round $r of $ROUNDS: from_pretrained from the original directory, cold"
		drop_caches
		LOAD[original]="${LOAD[original]:-} $(load_time "$MODEL")" ||
			die "from_pretrained failed on $MODEL"
		for s in "${SYSTEMS[@]}"; do
			note "round $r of $ROUNDS: from_pretrained from ${LABEL[$s]}, cold"
			drop_caches
			mount_fs "$s"
			t=$(load_time "$MNT") || die "from_pretrained failed on $s"
			umount_fs
			LOAD[$s]="${LOAD[$s]:-} $t"
		done
	done
fi

# --- where the nwcfs daemon spends its time ------------------------------------------
# bucket: perf report lines (percent, dso, symbol) into named shares.
bucket() {
	awk '
	function add(b, p) { share[b] += p; if (!(b in seen)) { seen[b] = 1; order[++n] = b } }
	/^ *[0-9.]+%/ {
		# "12.34%  DSO  [.] SYMBOL  -  -": the IPC columns follow
		p = $1; sub(/%/, "", p); dso = $2; sym = $4
		if (sym ~ /^nwc_ransw|^nwc_rans8/) add("byte planes: rANS", p)
		else if (dso ~ /zstd/ || sym ~ /^ZSTD_|^HUF_|^FSE_/) add("byte planes: zstd", p)
		else if (sym ~ /planes_merge/) add("byte planes: merge", p)
		else if (sym ~ /^nwc_ents_|^lanes_avx2|^lane_value|^dec_value|^dec_escape/) add("lossy: latent rANS + trellis contexts", p)
		else if (dso ~ /openblas/ || sym ~ /gemm|linear|^lin$/) add("lossy: Linear layers", p)
		# net_lanes_avx2: the lanes kernel, whose BF16 output is inlined
		else if (sym ~ /block_rows|blocks_out|nwc_net_|nwc_model_synth|net_lanes/) add("lossy: LayerNorm, activation", p)
		else if (sym ~ /nwc_band_decode|emit_|nwc_from_f32|latents/) add("lossy: latents in, BF16 out", p)
		else if (sym ~ /^__mem(move|cpy)/) add("user copies (cache to reply)", p)
		else if (sym ~ /^nwc_cache|^nwc_engine|fill_block|prefetch|nwc_workq|nwc_image|pthread|futex|xxh|XXH/) add("cache, engine, checksums", p)
		else if (sym ~ /fuse|__pi_memcpy|gup_|pipe|splice/) add("kernel: FUSE transfer", p)
		else if (sym ~ /copy_to_iter|filemap|readahead|page_cache|blk|nvme|virtio/) add("kernel: image reads", p)
		else if (sym ~ /fault|clear_page|anonymous|alloc|folio|memcg|lru|pte|mm_|mas_|rmqueue|charge|lruvec/) add("kernel: page faults, memory", p)
		else if (sym ~ /sched|switch|wake|yield|idle|spin|irq|rcu|timer|hrtimer/) add("kernel: scheduling, locks", p)
		else add("other", p)
	}
	END { for (i = 1; i <= n; i++) printf "%s\t%.1f\n", order[i], share[order[i]] }'
}

declare -A PROF
PROF_CASES=()
if command -v perf >/dev/null && perf record -o "$W/probe.data" true >/dev/null 2>&1; then
	for s in nwc-lossless nwc-lossy nwc-lossy-lin; do
		for n in 1 $READERS; do
			note "perf: ${LABEL[$s]}, cold, $n reader(s)"
			drop_caches
			mount_fs "$s"
			perf record -q -F 2000 -g -p "$DPID" -o "$W/perf.data" \
				2>/dev/null &
			ppid=$!
			sleep 0.5
			# three cold reads: one alone varies too much
			for r in 1 2 3; do
				drop_caches
				"$RB" seq --bs 1M --procs "$n" "$MNT/$FILE" \
					>/dev/null || die "readbench under perf failed"
			done
			kill -INT $ppid
			wait $ppid 2>/dev/null
			umount_fs
			PROF[$s/$n]=$(perf report -i "$W/perf.data" --no-children \
				--sort dso,symbol -g none --percent-limit 0 2>/dev/null |
				bucket)
			PROF_CASES+=("$s/$n")
		done
	done
fi

# --- report ----------------------------------------------------------------------
commit=$(git -C "$S" rev-parse --short HEAD 2>/dev/null) || commit=unknown
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
cell() { echo "$(stats ${MBPS[$1]}) ($(median ${CPU[$1]}))"; }
{
	echo "# nwcfs read path against squashfuse"
	echo
	echo "Machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr); commit $commit, $(date -u '+%Y-%m-%d %H:%M UTC'). MB = 10^6 bytes."
	echo
	echo "Model: \`tests/gen_model --size $SIZE --dtype BF16\`, $FILE of $(calc '%.1f' "$BYTES / 1e6") MB read whole with 1 MiB preads (\`bench/readbench seq\`). Images: nwcfs lossless $(calc '%.1f' "$(fsize "$W/lossless.nwc") / 1e6") MB, nwcfs \`--bits 4\` (uncalibrated) $(calc '%.1f' "$(fsize "$W/lossy.nwc") / 1e6") MB, the same with the linear codec models (\`--model-set linear\`) $(calc '%.1f' "$(fsize "$W/lossy-lin.nwc") / 1e6") MB, squashfs (\`mksquashfs -comp zstd -Xcompression-level 19 -b 1M\`) $(calc '%.1f' "$(fsize "$W/model.sqfs") / 1e6") MB, served by squashfuse and squashfuse_ll. Every run mounts afresh; cold: page cache dropped; warm: the image in the page cache; N readers read 1/N of the file each. $ROUNDS rounds, each system and case in turn."
	echo
	echo "## Sequential read: MB/s, median [min-max] (CPU seconds per GB served, daemon and readers)"
	echo
	hdr="| system |" sep="|---|"
	for c in "${CASES[@]}"; do
		set -- $c
		hdr="$hdr $1, $2 reader$([ "$2" = 1 ] || echo s) |"
		sep="$sep---:|"
	done
	echo "$hdr"
	echo "$sep"
	for s in "${SYSTEMS[@]}"; do
		row="| ${LABEL[$s]} |"
		for c in "${CASES[@]}"; do
			row="$row $(cell "$s/$c") |"
		done
		echo "$row"
	done
	echo "| cat of the original (page cache) | $(cell cat) |$(printf ' |%.0s' $(seq 2 ${#CASES[@]}))"
	echo
	echo "Ratios of medians, cold, 1 reader: nwcfs lossless / squashfuse $(calc '%.2f' "$(median ${MBPS[nwc-lossless/cold 1]}) / $(median ${MBPS[squashfuse/cold 1]})")x, nwcfs lossy / squashfuse $(calc '%.2f' "$(median ${MBPS[nwc-lossy/cold 1]}) / $(median ${MBPS[squashfuse/cold 1]})")x; CPU per GB, nwcfs lossless / squashfuse $(calc '%.2f' "$(median ${CPU[nwc-lossless/cold 1]}) / $(median ${CPU[squashfuse/cold 1]})")x."
	echo
	echo "## One core: MB/s, median [min-max]"
	echo
	if [ -n "${CORE[nwc-lossless/whole]:-}" ]; then
		echo "The daemon pinned to CPU 0 (\`taskset\`), one reader on CPU 1, the image in the page cache, a fresh mount each time: what one core serves. *Linear layers*: only their bytes, $(calc '%.1f' "$LIN_LEN / 1e6") MB from offset $LIN_OFF, which a lossy image codes with the neural codec (its embeddings stay lossless)."
		echo
		echo "| system | whole file | linear layers |"
		echo "|---|---:|---:|"
		for s in "${SYSTEMS[@]}"; do
			echo "| ${LABEL[$s]} | $(stats ${CORE[$s/whole]}) | $(stats ${CORE[$s/layers]}) |"
		done
	else
		echo "Skipped: needs two CPUs and taskset(1)."
	fi
	echo
	echo "## Random 4 KiB reads, cold mount: p50 / p99 latency (us)"
	echo
	echo "$RAND_COUNT preads at random 4K-aligned offsets of $FILE (seed 1)."
	echo
	echo "| system | p50 / p99 us |"
	echo "|---|---:|"
	for s in "${SYSTEMS[@]}"; do
		echo "| ${LABEL[$s]} | ${RAND[$s]} |"
	done
	echo
	echo "## transformers from_pretrained(), cold (seconds, median [min-max])"
	echo
	if [ -n "$PY" ] && [ -n "${LOAD[original]:-}" ]; then
		echo "\`AutoModelForCausalLM.from_pretrained(DIR, torch_dtype=torch.bfloat16)\` with $PY, transformers $("$PY" -c 'import transformers; print(transformers.__version__)'), page cache dropped before each."
		echo
		echo "| source | seconds |"
		echo "|---|---:|"
		echo "| original directory | $(printf '%s\n' ${LOAD[original]} | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f [%.2f-%.2f]", v[int((NR + 1) / 2)], v[1], v[NR] }') |"
		for s in "${SYSTEMS[@]}"; do
			echo "| ${LABEL[$s]} | $(printf '%s\n' ${LOAD[$s]} | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f [%.2f-%.2f]", v[int((NR + 1) / 2)], v[1], v[NR] }') |"
		done
	else
		echo "Skipped: no python3 with torch and transformers (set NWC_PYTHON), or no config.json."
	fi
	echo
	echo "## Where the nwcfs daemon's time goes (perf, % of its samples, cold)"
	echo
	if [ ${#PROF_CASES[@]} -gt 0 ]; then
		echo "\`perf record -g -p DAEMON\` over three cold reads on one mount, symbols put in buckets by name (bench/readpath.sh, bucket())."
		echo
		hdr="| bucket |" sep="|---|"
		for k in "${PROF_CASES[@]}"; do
			hdr="$hdr ${LABEL[${k%/*}]}, ${k#*/} reader(s) |"
			sep="$sep---:|"
		done
		echo "$hdr"
		echo "$sep"
		for k in "${PROF_CASES[@]}"; do printf '%s\n' "${PROF[$k]}"; done |
			cut -f 1 | awk '!seen[$0]++' | while read -r b; do
			row="| $b |"
			for k in "${PROF_CASES[@]}"; do
				v=$(printf '%s\n' "${PROF[$k]}" | awk -F '\t' -v b="$b" '$1 == b { print $2 }')
				row="$row ${v:-0.0} |"
			done
			echo "$row"
		done
	else
		echo "Skipped: perf is not installed or may not record here."
	fi
	echo
	echo "Produced by \`make bench-read\` in $B."
} >"$RES" || die "cannot write $RES"
cat "$RES"
note "results written to $RES"
