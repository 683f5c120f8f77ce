"""Dong, Cordonnier & Loukas 2021, Theorem 2.2 and Fig. 2: rank collapse of pure attention.

The four nets of the paper's Fig. 2 at initialisation, built from the same blocks: self-attention
alone (SAN), with skip connections (SAN + skip), with an MLP after each attention layer
(SAN + MLP), and with both (SAN + MLP + skip, a transformer without LayerNorm). Left: the
relative residual res(X_l) = ‖X_l − 1x̄ᵀ‖_F/‖X_l‖_F of each block's output against the block,
log scale, one thin line per seed. Right: 1 − the mean cosine between the tokens, log scale: 0
when every token points the same way. A value at or below float32 rounding is drawn on the
dotted line (exact zeros occur once every token is the same number).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

#: (attention_only, residual) → the paper's name of the net
NETS = {(True, False): "SAN", (True, True): "SAN + skip", (False, False): "SAN + MLP",
        (False, True): "SAN + MLP + skip"}
COLOURS = {"SAN": "tab:red", "SAN + skip": "tab:blue", "SAN + MLP": "tab:orange", "SAN + MLP + skip": "tab:green"}
#: res below this is float32 rounding of ‖X − 1x̄ᵀ‖ (relative 1e-7 per entry): not a measurement
RELIABLE = 1e-6
#: "collapsed to float32 precision"
COLLAPSED = 1e-5
#: the block by which SAN must have collapsed
COLLAPSED_BY = 5
#: where values at or below float32 rounding are drawn
DRAW_FLOOR = 1e-9


def blocks(results) -> pd.DataFrame:
    """Per block output at step 0: net, seed, layer, rank_residual, token_cosine."""
    layers = results.with_config("layers")
    layers = layers[layers["step"] == 0]
    net = [NETS[bool(a), bool(r)] for a, r in zip(layers["attention_only"], layers["residual"])]
    return layers.assign(net=net)[["net", "seed", "layer", "rank_residual", "token_cosine"]]


def res_by_seed(results, net: str) -> pd.DataFrame:
    """res of ``net``: one row per seed, one column per block."""
    df = blocks(results)
    return df[df["net"] == net].pivot_table(index="seed", columns="layer", values="rank_residual")


def convergence_order(res: pd.Series) -> float:
    """The order p of res's convergence to 0: the least-squares slope of ln r_{l+1} on ln r_l over
    the consecutive blocks whose res are both ≥ RELIABLE. An exponential decay r_l = r_1 q^(l−1)
    gives p = 1 whatever q (ln r_{l+1} = ln r_l + ln q), a decay that slows down p < 1; a doubly
    exponential one p > 1 (r_{l+1} = c r_l² gives 2, the paper's cubic bound 3). NaN (fails any
    threshold) with fewer than three reliable blocks."""
    r = np.asarray(res, float)
    reliable = int(np.argmax(r < RELIABLE)) if (r < RELIABLE).any() else len(r)
    logs = np.log(r[:reliable])
    if len(logs) < 3:
        return float("nan")
    return float(np.polyfit(logs[:-1], logs[1:], 1)[0])


def last_reliable_block(res: pd.DataFrame) -> int:
    """The block before the first where some seed's res is below RELIABLE (at least the first block)."""
    ok = (res >= RELIABLE).all(axis=0).to_numpy()
    reliable = len(ok) if ok.all() else int(np.argmax(~ok))
    return int(res.columns[max(reliable, 1) - 1])


def _seeds(values) -> str:
    return ", ".join(f"{v:.2g}" for v in values)


def _fixed(values) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def plot(results):
    from satbench.figures._common import style

    style()
    df = blocks(results)
    runs = results.runs
    fig, (ax_res, ax_cos) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for net in [n for n in NETS.values() if n in set(df["net"])]:
        for i, (_, g) in enumerate(df[df["net"] == net].sort_values("layer").groupby("seed")):
            label = net if i == 0 else None
            ax_res.plot(g["layer"], g["rank_residual"].clip(lower=DRAW_FLOOR), color=COLOURS[net], lw=1,
                        alpha=0.8, marker=".", label=label)
            ax_cos.plot(g["layer"], (1 - g["token_cosine"]).clip(lower=DRAW_FLOOR), color=COLOURS[net], lw=1,
                        alpha=0.8, marker=".", label=label)
    for ax in (ax_res, ax_cos):
        ax.axhline(DRAW_FLOOR, color="grey", ls=":", lw=1)
        ax.set(yscale="log", xlabel="block l")
    ax_res.axhline(COLLAPSED, color="grey", ls="--", lw=0.8)
    ax_res.set(ylabel="res(X_l) = ‖X_l − 1x̄ᵀ‖_F / ‖X_l‖_F", title="relative residual (dashed: 1e-5)")
    ax_cos.set(ylabel="1 − mean cosine between tokens", title="token alignment (dotted: ≤ float32 rounding)")
    ax_res.legend(fontsize=8)
    fig.suptitle(f"rank collapse at init: width {int(runs['width'].iloc[0])}, {int(runs['heads'].iloc[0])} heads, "
                 f"{runs['dataset'].iloc[0]} ({int(runs['probe_batch'].iloc[0])} examples), no LayerNorm, "
                 f"{runs['activation'].iloc[0]} MLP, σ_w² = {runs['sigma_w2'].iloc[0]:g} (one line per seed)")
    return fig


def claims(results):
    """Rank collapse of pure attention at init, what skips and MLPs do to it.

    Thresholds, from seeds 0–1 of the quick profile (width 64, 12 blocks, seq_digits, 64
    examples): SAN's res at block 5 is 7.3e-8 and 7.5e-8, float32 rounding (1e-5 asked), its
    token cosine 1.0000 (> 0.999 asked); its order of convergence p is 1.81 and 1.43 (> 1.2
    asked: exponential decay gives exactly 1, so the bar sits between the two laws with room for
    seed noise); the skip nets' res at block 12 is .024–.028 (> 1e-2 asked) against SAN's
    ≈ 4e-8 (≥ 1e3× asked); at block 3 SAN + MLP's res is 6.5e-5 and 1.8e-5 against SAN's 1.2e-3
    and 2.1e-3. Seeds 2–3, not used to choose them: SAN at block 5 6.8e-8 and 8.5e-8, p = 1.67
    and 1.30, skip nets at block 12 .024–.041, SAN + MLP at block 3 7.7e-5 and 7.4e-5 against
    SAN's 1.6e-3 and 1.2e-3 — every claim holds.
    """
    df = blocks(results)
    san, skip = res_by_seed(results, "SAN"), res_by_seed(results, "SAN + skip")
    mlp, both = res_by_seed(results, "SAN + MLP"), res_by_seed(results, "SAN + MLP + skip")
    cos = df[df["net"] == "SAN"].pivot_table(index="seed", columns="layer", values="token_cosine")
    at, deepest = COLLAPSED_BY, int(san.columns.max())
    order = san.apply(convergence_order, axis=1)
    skip_order = skip.apply(convergence_order, axis=1)
    kept = pd.concat([skip[deepest], both[deepest]])
    k = last_reliable_block(pd.concat([san, mlp]))
    return [
        dict(claim=f"pure attention collapses to float32 precision within {at} blocks: SAN's res < {COLLAPSED:g} "
                   f"and token cosine > 0.999 at block {at}, every seed (set on seeds 0–1, checked on 2–3)",
             paper="SAN's output converges to a rank-1 matrix of equal rows (Thm 2.2); in Fig. 2 the SAN "
                   "residual falls to ≈ 0 within a few layers",
             measured=f"res {_seeds(san[at])}; cosine {', '.join(f'{v:.4f}' for v in cos[at])} (per seed)",
             holds=bool((san[at] < COLLAPSED).all() and (cos[at] > 0.999).all())),
        dict(claim="doubly exponential: SAN's order of convergence p > 1.2, every seed (p: slope of ln res_{l+1} "
                   f"on ln res_l while res ≥ {RELIABLE:g}; exponential decay gives 1; set on seeds 0–1, "
                   "checked on 2–3)",
             paper="cubic rate: ln res_{l+1} ≤ 3 ln res_l + const, i.e. p = 3 in the bound (Thm 2.2: "
                   "res ≤ c^((3^L − 1)/2) res_0^(3^L))",
             measured=f"SAN p = {_fixed(order)} (per seed); SAN + skip p = {_fixed(skip_order)}",
             holds=bool((order > 1.2).all())),
        dict(claim=f"skip connections keep the rank: res > 1e-2 at block {deepest} with skips (with and without "
                   f"MLP), ≥ 1e3× SAN's there, every seed (set on seeds 0–1, checked on 2–3)",
             paper="skip connections stop the collapse: in Fig. 2 SAN + skip and the transformer keep res "
                   "far from 0 (Sec. 3.1: paths of every length)",
             measured=f"block {deepest}: skip {_seeds(skip[deepest])}, MLP + skip {_seeds(both[deepest])}, "
                      f"SAN {_seeds(san[deepest])}",
             holds=bool((kept > 1e-2).all() and kept.min() >= 1e3 * san[deepest].max())),
        dict(claim=f"NOT the paper's MLP effect at init: with the family's ReLU MLP (σ_w² = 1) SAN + MLP's res at "
                   f"block {k} (the last where both are ≥ {RELIABLE:g}) is below SAN's, every seed: the MLP speeds "
                   "the collapse (set on seeds 0–1, checked on 2–3)",
             paper="MLPs can slow down the convergence (Sec. 3.2: the bound's rate worsens with the MLP's "
                   "Lipschitz constant)",
             measured=f"block {k}: SAN + MLP {_seeds(mlp[k])} vs SAN {_seeds(san[k])}",
             holds=bool((mlp[k] < san[k]).all())),
    ]


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("dong2021", plot)
