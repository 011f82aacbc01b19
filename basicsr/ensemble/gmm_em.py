"""Batched EM for EnsIR's 1-D Gaussian mixtures with fixed component means.

One *group* is one (bin, colour channel) of the reference set. Its data are the ground-truth values y
that fall in it; the mixture has one component per model with mean fixed at that model's mean
prediction in the group. EM estimates the mixing weights (the ensemble weights) and the variances.

All groups are fitted at once: the data of every group are stored as weighted points (a value and how
many samples have it) in one flat array, per-group sums are ``index_add_`` reductions, and groups that
have stopped are dropped from the arrays. Because the means are fixed, samples with the same y have the
same responsibilities, so 8-bit ground truth reduces to at most 256 points per group without changing
the estimate.

The update, stopping rule and failure handling follow the official EnsIR code (its modified
gmm-torch), including its oddities; ``robust=True`` replaces the two failure modes by the obvious fix.
"""
import math
from dataclasses import dataclass

import torch

Tensor = torch.Tensor

LOG_2PI = math.log(2.0 * math.pi)

# per-group outcome codes
EM_DONE = 0      # EM ran and stopped by the gain threshold or the step cap
EM_FAILED = 1    # a variance became 0, NaN or inf (official: an exception) -> initial weights
EM_RESET = 2     # the mean log-likelihood became non-finite (official: re-initialised) -> uniform weights


@dataclass
class EMResult:
    """weights: (G, M) float32 mixing weights; status: (G,) int64 outcome codes; steps: (G,) EM steps run."""
    weights: Tensor
    status: Tensor
    steps: Tensor


def _log_joint(y: Tensor, group: Tensor, pi: Tensor, mu: Tensor, var: Tensor) -> Tensor:
    """log(pi_m N(y | mu_m, var_m)) for every point and component, (P, M).

    Written as the official code evaluates it (precision = 1/var, log-det from its square root) so the
    float32 rounding, and with it the stopping step, stays close to the reference.
    """
    prec = 1.0 / var
    log_det = 2.0 * torch.log(torch.sqrt(prec))
    d = y[:, None] - mu[group]
    return -0.5 * ((LOG_2PI - log_det[group]) + (d * prec[group]) * d) + torch.log(pi)[group]


def _valid_variance(var: Tensor) -> Tensor:
    """(G,) True where every component variance is a positive finite number."""
    return ((var > 0) & (var < math.inf)).all(dim=1)


def _group_sum(values: Tensor, group: Tensor, num_groups: int) -> Tensor:
    """Per-group sums, accumulated in float64: index_add_ adds serially, and float32 rounding over
    thousands of points would put noise into the likelihood gain that decides when EM stops."""
    out = torch.zeros((num_groups, ) + tuple(values.shape[1:]), dtype=torch.float64, device=values.device)
    return out.index_add_(0, group, values.double()).to(values.dtype)


def fit_fixed_mean_gmm(y: Tensor, count: Tensor, group: Tensor, mu: Tensor, var: Tensor, pi: Tensor, n: Tensor,
                       max_steps: int = 1000, tol: float = 1e-5, eps: float = 1e-6, robust: bool = False,
                       dtype: torch.dtype = torch.float32) -> EMResult:
    """Fit the mixing weights of G fixed-mean 1-D mixtures by EM, all groups together.

    Args:
        y: (P,) data values (ground truth, [0, 255] scale); count: (P,) how many samples have that value;
            group: (P,) int64 group of each point, in [0, G).
        mu: (G, M) fixed component means; var: (G, M) initial variances; pi: (G, M) initial weights.
        n: (G,) number of samples per group (the sum of ``count`` over its points).
        max_steps: the loop runs while ``step <= max_steps`` and the gain is >= ``tol`` (so at most
            max_steps + 1 steps, as the official code).
        tol: threshold on the gain of the mean (not summed) log-likelihood.
        eps: added to the responsibility sums and to the variances.
        robust: False = official: a zero/NaN/inf variance ends the group with its initial weights, a
            non-finite likelihood with uniform weights. True = initial zero variances are raised to eps,
            a component whose responsibilities all underflow keeps its previous variance (so its weight
            can go to ~0 instead of aborting), and a non-finite likelihood keeps the last finite weights.
        dtype: float32 reproduces the official numbers; float64 makes the stopping step insensitive to
            summation order.
    Returns:
        EMResult with float32 weights.
    """
    num_groups, num_models = mu.shape
    device = mu.device
    y, count = y.to(dtype), count.to(dtype)
    mu, var, pi, n = mu.to(dtype), var.to(dtype), pi.to(dtype), n.to(dtype)
    init_pi = pi.clone()
    if robust:
        var = var.clamp_min(eps)

    weights = init_pi.clone()
    status = torch.full((num_groups, ), EM_DONE, dtype=torch.long, device=device)
    steps = torch.zeros(num_groups, dtype=torch.long, device=device)

    ok = _valid_variance(var)
    status[~ok] = EM_FAILED
    ids = torch.nonzero(ok).squeeze(1)  # global ids of the groups still iterating
    local = torch.full((num_groups, ), -1, dtype=torch.long, device=device)
    local[ids] = torch.arange(ids.numel(), device=device)
    keep_pt = local[group] >= 0
    y, count, group = y[keep_pt], count[keep_pt], local[group[keep_pt]]
    mu, var, pi, n = mu[ids], var[ids], pi[ids], n[ids]
    log_lik = torch.full((ids.numel(), ), -math.inf, dtype=dtype, device=device)
    log_joint = _log_joint(y, group, pi, mu, var)
    log_norm = torch.logsumexp(log_joint, dim=1, keepdim=True)

    step = 0
    while ids.numel() > 0:
        g = ids.numel()
        # E-step: responsibilities as exp(log-joint - log-normaliser), as gmm-torch computes them
        resp = torch.exp(log_joint - log_norm) * count[:, None]
        # M-step: weights and variances; the means stay fixed, the variance is centred on the
        # responsibility-weighted mean of the data (official behaviour)
        sums = _group_sum(torch.cat([resp, resp * y[:, None]], dim=1), group, g)
        s = sums[:, :num_models]
        d = y[:, None] - (sums[:, num_models:] / (s + eps))[group]
        new_var = _group_sum(resp * d * d, group, g) / s + eps
        new_pi = (s + eps) / n[:, None]
        if robust:
            new_var = torch.where(s > 0, new_var, var)
        step += 1

        # score: mean log-likelihood under the new parameters; its log-joint is the next E-step's input
        failed = ~_valid_variance(new_var)
        new_log_joint = _log_joint(y, group, new_pi, mu, new_var)
        new_log_norm = torch.logsumexp(new_log_joint, dim=1, keepdim=True)
        new_lik = _group_sum(new_log_norm[:, 0] * count, group, g) / n
        reset = ~torch.isfinite(new_lik) & ~failed
        done = failed | reset | ~(new_lik - log_lik >= tol) | (step > max_steps)

        if bool(done.any()):
            final_pi = new_pi[done]
            if robust:
                final_pi[(failed | reset)[done]] = pi[done][(failed | reset)[done]]
            else:
                final_pi[failed[done]] = init_pi[ids[done & failed]]
                final_pi[reset[done]] = 1.0 / num_models
            weights[ids[done]] = final_pi
            steps[ids[done]] = step
            status[ids[failed]] = EM_FAILED
            status[ids[reset]] = EM_RESET

            keep = ~done
            remap = torch.full((g, ), -1, dtype=torch.long, device=device)
            remap[keep] = torch.arange(int(keep.sum()), device=device)
            keep_pt = keep[group]
            y, count, group = y[keep_pt], count[keep_pt], remap[group[keep_pt]]
            new_log_joint, new_log_norm = new_log_joint[keep_pt], new_log_norm[keep_pt]
            ids, mu, n = ids[keep], mu[keep], n[keep]
            new_pi, new_var, new_lik = new_pi[keep], new_var[keep], new_lik[keep]
        pi, var, log_lik, log_joint, log_norm = new_pi, new_var, new_lik, new_log_joint, new_log_norm

    return EMResult(weights.float(), status, steps)
