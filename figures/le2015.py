"""Le, Jaitly & Hinton 2015: a ReLU RNN whose recurrent matrix starts at the identity (IRNN) learns the
adding problem where a tanh RNN with Gaussian recurrent weights stays at the baseline of predicting 1
(MSE 1/6). The figure is ``_adding_problem``'s.
"""

from __future__ import annotations

from satbench.figures._adding_problem import final, stays_at_baseline
from satbench.figures._adding_problem import plot as plot  # noqa: PLC0414  (this experiment's figure)

#: the paper's bar for "beats the baseline" (its adding-problem figure: the IRNN's MSE falls well below 0.1)
BEATS = 0.05


def claims(results):
    """Per length T: every IRNN seed ends below BEATS, every tanh RNN seed within AT_BASELINE of 1/6
    (or above it)."""
    table = final(results).set_index(["net", "seq_len"])
    lengths = sorted(table.index.get_level_values("seq_len").unique())
    rows = []
    for t in lengths:
        irnn, rnn = table.loc[("IRNN", t)], table.loc[("RNN tanh, gaussian", t)]
        rows.append(dict(
            claim=f"T = {t}: the IRNN beats the baseline (every seed's final MSE < {BEATS})",
            paper="IRNN solves adding up to T = 400; MSE far below 0.167",
            measured=f"worst seed MSE {irnn['worst']:.4f}, median {irnn['mse']:.4f}; test solved {irnn['solved']:.0%}",
            holds=bool(irnn["worst"] < BEATS)))
        rows.append(stays_at_baseline(rnn, t, paper="tanh RNN stays at about 0.167"))
    return rows


if __name__ == "__main__":
    from satbench.figures._common import standalone

    standalone("le2015", plot)
