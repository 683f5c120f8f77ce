"""The recurrent families ``rnn``, ``lstm`` and ``gru``: ``depth`` recurrent layers of ``width``
units over a sequence task, read out from the last state (the implementation is
``satbench.recurrent``). Their sites are time steps, probed into the ``timesteps`` table."""

from __future__ import annotations

from types import MappingProxyType

from satbench import families
from satbench.fields import Field, choices, positive


def _known_inits():
    from satbench import inits  # loads JAX: only when a value is checked

    return inits.known_inits()


FIELDS = MappingProxyType({
    "recurrent_init": Field(str, "gaussian", "rule of the recurrent weights, gain sigma_w2: gaussian N(0, σ_w²/n), "
                            "orthogonal σ_w·Q, identity σ_w·I (Le et al. 2015), or any init (rnn, lstm, gru)",
                            choices(_known_inits), id_omits_default=True),
    "input_sigma2": Field(float, 1.0, "gain σ² of the input weights, drawn by init (rnn, lstm, gru)", positive,
                          batched=True, id_omits_default=True),
    "forget_bias": Field(float, 1.0, "initial bias of the forget gate (lstm; Gers et al. 2000)", batched=True,
                         id_omits_default=True),
})


def check(values) -> str | None:
    """A sequence task, and no probe that assumes layers."""
    return (families.sequence_task_problem(values)
            or families.unprobed_problem(values, ("jacobian_samples", "histogram_bins"), "not probed through time yet"))


#: training examples whose inputs drive the mean-field recursion of ``theory``
THEORY_EXAMPLES = 1000


def input_variance(values):
    """(examples, T): Var((x_t U)_i) = gain · ‖x_t‖² / F of each of the first ``THEORY_EXAMPLES``
    training sequences at each step, U drawn by ``init`` at gain ``input_sigma2`` (N(0, gain/F))."""
    from satbench import data, inits

    second_moment = data.input_mean_square(values["dataset"], values["preprocess"], values["train_subset"],
                                           values["seq_len"], THEORY_EXAMPLES)
    return inits.mean_field_sigma_w2(values["init"], values["input_sigma2"]) * second_moment


def mean_field_point(values) -> tuple[float, float]:
    """(σ_w², σ_b²) of the feed-forward mean-field map that a vanilla RNN's state follows from one
    step to the next: the recurrent rule's σ_w², and the bias variance plus the input's average
    contribution (``input_variance``)."""
    from satbench import inits

    inputs = float(input_variance(values).mean())
    return inits.mean_field_sigma_w2(values["recurrent_init"], values["sigma_w2"]), values["sigma_b2"] + inputs


def theory(values) -> dict[str, float]:
    """``time_decay_theory``: the mean-field per-step factor along the task's own inputs
    (``theory.recurrent_step_factor``), over the steps ``time_decay`` is fitted on."""
    from satbench import inits
    from satbench import theory as mean_field

    sigma_w2 = inits.mean_field_sigma_w2(values["recurrent_init"], values["sigma_w2"])
    factor = mean_field.recurrent_step_factor(values["activation"], sigma_w2, values["sigma_b2"],
                                              input_variance(values), first=values["seq_len"] // 4)
    return {"time_decay_theory": float(factor)}


def _declare(name: str, description: str, own: tuple[str, ...], **extra) -> families.Family:
    return families.register(families.Family(
        name=name, description=description, implementation="satbench.recurrent",
        reads=("width",), fields={k: FIELDS[k] for k in own}, check=check,
        defaults={"depth": 1, "dataset": "adding"}, pads_depth=False, site_table="timesteps", per_step_outputs=True,
        **extra,
    ))


RNN = _declare("rnn", "vanilla recurrent net h_t = φ(x_t U + h_{t−1} W + b), time under lax.scan",
               ("recurrent_init", "input_sigma2"),
               # the state's variance follows the feed-forward q-map with the input in the bias term;
               # the identity is not a random matrix
               mean_field=lambda values: values["recurrent_init"] != "identity",
               mean_field_point=mean_field_point, theory=theory)
LSTM = _declare("lstm", "long short-term memory (Hochreiter & Schmidhuber 1997, with a forget gate)",
                ("recurrent_init", "input_sigma2", "forget_bias"))
GRU = _declare("gru", "gated recurrent unit (Cho et al. 2014)", ("recurrent_init", "input_sigma2"))
