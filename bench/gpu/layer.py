"""Part `layer`: one wrapped linear, forward + backward in bf16, at 4096x4096 and 4096x11008 (LLaMA-7B's attention
and MLP shapes): frozen base, lora r=32, fused asymlora r=32 E=3, moe_lora E=3, mixlora (pool 32, r=8), and the
asymlora adapter path alone, fused against the paper's per-expert loop. bench/adapter_layer.py's rounds: every
round times every variant at both shapes in a shuffled order; ratios are medians of per-round ratios.
"""

from __future__ import annotations

import statistics

from adapter_layer import paired_ratio, run_rounds
from common import run_args, write_part


def main():
    args = run_args(__doc__)
    shapes, tokens, reps = ([(64, 64), (64, 172)], 32, 3) if args.smoke else ([(4096, 4096), (4096, 11008)], 8192, 20)
    times = run_rounds(shapes, tokens, reps, args.device, args.dtype)
    result = {"part": "layer", "tokens": tokens, "reps": reps, "dtype": "bfloat16",
              "ms": {f"{d_in}x{d_out}": {name: 1000 * statistics.median(t) for name, t in per.items()}
                     for (d_in, d_out), per in times.items()},
              "ratios": {"asym_over_lora": paired_ratio(times, "asymlora", "lora"),
                         "moe_over_lora": paired_ratio(times, "moe_lora", "lora"),
                         "mix_over_lora": paired_ratio(times, "mixlora", "lora"),
                         "lora_over_base": paired_ratio(times, "lora", "base"),
                         "loop_over_fused": paired_ratio(times, "asym_delta_loop", "asym_delta_fused")}}
    print(result, flush=True)
    write_part(args.out, "layer", result)


if __name__ == "__main__":
    main()
