# Sourced by the training scripts: preloads tcmalloc where it is installed. XLA:CPU allocates a
# step's large buffers afresh each step; glibc's malloc maps and unmaps them, so every step faults
# their pages in again, zero-filled by the kernel, while tcmalloc keeps freed pages for the next
# step. Measured with experiments/bench_malloc.py. Debian/Ubuntu: apt install libtcmalloc-minimal4.
for lib in /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
           /usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4 /usr/lib64/libtcmalloc_minimal.so.4; do
  if [ -e "$lib" ]; then
    case ":${LD_PRELOAD:-}:" in
      *":$lib:"*) ;;
      *) export LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" ;;
    esac
    break
  fi
done
