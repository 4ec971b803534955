"""SyncBatchNorm2d on real gloo processes against one BatchNorm2d (torch's and bnlib's) on
the concatenated batch; the disagreeing-ranks errors, in bounded time; run()'s clean-up.

Each run() starts fresh processes (each imports torch: a few seconds), so the cases are
batched into a few runs; the results are computed once per module.
"""

import time

import numpy as np
import psutil
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import bnlib
from bnbook import distributed_jobs
from bnlib import distributed, sharded
from bnlib.distributed import SyncBatchNorm2d

C = 3
TOL = {np.float32: dict(rtol=1e-4, atol=1e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def make_job(seed, sizes, dtype, steps=2, mean=0.0, spatial=(4, 4), backward=True, **kwargs):
    """A training job: per rank, ``steps`` batches of sizes[rank] images, dy, eval input."""
    rng = np.random.default_rng(seed)
    c = kwargs.get("num_features", C)

    def data(n, offset=0.0):
        return (offset + rng.standard_normal((n, c, *spatial))).astype(dtype)

    job = {
        "kwargs": {"num_features": c, **kwargs},
        "weight": rng.uniform(0.5, 2, c).astype(np.float32),
        "bias": rng.standard_normal(c).astype(np.float32),
        "batches": [[data(n, mean) for _ in range(steps)] for n in sizes],
        "dys": [[data(n) for _ in range(steps)] for n in sizes] if backward else None,
        "eval_input": [data(max(n, 1), mean) for n in sizes],
    }
    return job


def torch_reference(job, dtype):
    """torch.nn.BatchNorm2d trained on each step's concatenated batch, autograd gradients."""
    kwargs = dict(job["kwargs"])
    bn = torch.nn.BatchNorm2d(**kwargs).to(torch.float64 if dtype == np.float64 else torch.float32)
    if bn.affine:
        with torch.no_grad():
            bn.weight.copy_(torch.from_numpy(job["weight"]))
            bn.bias.copy_(torch.from_numpy(job["bias"]))
    out = {}
    for step in range(len(job["batches"][0])):
        x = torch.from_numpy(np.concatenate([b[step] for b in job["batches"]])).requires_grad_()
        y = bn(x)
        out["y"] = y.detach().numpy()
        if job["dys"] is not None:
            dy = torch.from_numpy(np.concatenate([d[step] for d in job["dys"]]))
            bn.zero_grad()
            y.backward(dy)
            out["dx"] = x.grad.numpy()
            if bn.affine:
                out["grad_weight"], out["grad_bias"] = bn.weight.grad.numpy(), bn.bias.grad.numpy()
    out["state"] = {k: v.numpy() for k, v in bn.state_dict().items()}
    bn.eval()
    with torch.no_grad():
        out["eval_y"] = bn(torch.from_numpy(np.concatenate(job["eval_input"]))).numpy()
    return out


def bnlib_reference(job):
    """bnlib.BatchNorm2d on the concatenated batches (the same steps)."""
    bn = bnlib.BatchNorm2d(**job["kwargs"])
    if bn.affine:
        bn.weight[...], bn.bias[...] = job["weight"], job["bias"]
    out = {}
    for step in range(len(job["batches"][0])):
        out["y"] = bn(np.concatenate([b[step] for b in job["batches"]]))
        if job["dys"] is not None:
            out["dx"] = bn.backward(np.concatenate([d[step] for d in job["dys"]]))
    out["state"] = bn.state_dict()
    out["eval_y"] = bn.eval()(np.concatenate(job["eval_input"]))
    return out


# name: (sizes, dtype, job options)
CASES_2 = {
    "float32 unequal": ((1, 3), np.float32, {}),
    "float64 momentum=None": ((2, 5), np.float64, dict(momentum=None, steps=3)),
    "float32 large mean": ((3, 2), np.float32, dict(mean=1e4)),
    "float64 affine=False": ((4, 1), np.float64, dict(affine=False, track_running_stats=False)),
    "float32 one image each, 1x1 maps": ((1, 1), np.float32, dict(spatial=(1, 1), eps=1e-3)),
}
CASES_3 = {
    "float32 unequal": ((1, 2, 5), np.float32, {}),
    "float64 unequal, empty rank": ((3, 0, 2), np.float64, dict(momentum=0.3)),
}


def error_jobs():
    """Jobs that every rank must fail with the same clear error (world size 2)."""
    ok = make_job(7, (2, 2), np.float32, steps=1)
    channels = make_job(8, (2, 2), np.float32, steps=1)
    channels["kwargs"] = [{"num_features": C}, {"num_features": C + 1}]
    channels["batches"][1] = [np.ones((2, C + 1, 4, 4), np.float32)]
    channels["weight"] = None  # each rank keeps its own default parameters
    dtype = make_job(9, (2, 2), np.float32, steps=1)
    dtype["batches"][1] = [dtype["batches"][1][0].astype(np.float64)]
    ndim = make_job(10, (2, 2), np.float32, steps=1)
    ndim["batches"][0] = [ndim["batches"][0][0][:, :, 0]]
    wrong_c = make_job(11, (2, 2), np.float32, steps=1)
    wrong_c["batches"][1] = [np.ones((2, C + 2, 4, 4), np.float32)]
    integer = make_job(12, (2, 2), np.float32, steps=1)
    integer["batches"][0] = [np.ones((2, C, 4, 4), np.int64)]
    dy = make_job(13, (2, 2), np.float32, steps=1)
    dy["dys"][1] = [np.ones((2, C, 3, 3), np.float32)]
    one_value = make_job(14, (1, 0), np.float32, steps=1, spatial=(1, 1))
    eps = make_job(15, (2, 2), np.float32, steps=1)
    eps["kwargs"] = [{"num_features": C}, {"num_features": C, "eps": 1e-3}]
    return {
        "channels": (channels, "disagree on the number of channels: rank 0: 3, rank 1: 4"),
        "dtype": (dtype, r"disagree on the dtype \(float bits\): rank 0: 32, rank 1: 64"),
        "ndim": (ndim, r"rank 0 \(its input is not 4D"),
        "wrong channels": (wrong_c, r"rank 1 \(its input's channel count differs"),
        "integer input": (integer, r"rank 0 \(its input is not a float32 or float64"),
        "dy shape": (dy, r"backward: rank\(s\) \[1\]: its dy does not have the shape"),
        "one value": (one_value, "Expected more than 1 value per channel when training, got 1"),
        "eps": (eps, "disagree on the eps: rank 0: 1e-05, rank 1: 0.001"),
        "ok after errors": (ok, None),
    }


@pytest.fixture(scope="module")
def runs():
    """Every case of this module, in two runs (2 and 3 processes)."""
    jobs2 = {name: make_job(i, sizes, dt, **opt) for i, (name, (sizes, dt, opt)) in
             enumerate(CASES_2.items())}  # fmt: skip
    jobs3 = {name: make_job(100 + i, sizes, dt, **opt) for i, (name, (sizes, dt, opt)) in
             enumerate(CASES_3.items())}  # fmt: skip
    errors = error_jobs()
    start = time.monotonic()
    out2 = distributed.run(
        distributed_jobs.train_worker,
        2,
        [*jobs2.values(), *(job for job, _ in errors.values())],
        timeout=60,
        collective_timeout=5,
    )
    out3 = distributed.run(distributed_jobs.train_worker, 3, list(jobs3.values()), timeout=60)
    seconds = time.monotonic() - start
    results = {}
    for world, jobs, out in ((2, jobs2, out2), (3, jobs3, out3)):
        for i, name in enumerate(jobs):
            results[world, name] = (jobs[name], [rank_out[i] for rank_out in out])
    errors_out = {name: [rank_out[len(jobs2) + i] for rank_out in out2]
                  for i, name in enumerate(errors)}  # fmt: skip
    return results, errors, errors_out, seconds


ALL_CASES = [(2, n, c[1]) for n, c in CASES_2.items()] + [(3, n, c[1]) for n, c in CASES_3.items()]


@pytest.mark.parametrize("world,name,dtype", ALL_CASES, ids=[f"{w}-{n}" for w, n, _ in ALL_CASES])
def test_every_rank_matches_one_batchnorm_on_the_whole_batch(runs, world, name, dtype):
    job, ranks = runs[0][world, name]
    assert all(r["world_size"] == world and "error" not in r for r in ranks), ranks
    expected = torch_reference(job, dtype)
    ours = bnlib_reference(job)
    tol = dict(TOL[dtype])
    if "large mean" in name:
        # float32 spaces values near 10,000 by 2**-10: x − μ (μ rounded to float32, by
        # torch and by us alike) is known to about that, times γ·invstd (up to ~2)
        tol["atol"] = 2 * 2.0**-10
        exact = np.concatenate([b[-1] for b in job["batches"]]).astype(np.float64)
        for r in ranks:  # the exact merge keeps the variance: against float64, tightly
            unbiased = exact.var(axis=(0, 2, 3), ddof=1)
            running = 0.9 * (0.9 * 1 + 0.1 * ranks_var0(job)) + 0.1 * unbiased
            np.testing.assert_allclose(r["state"]["running_var"], running, rtol=1e-5)
    # bnlib keeps float32 buffers (as torch's default module) where the torch reference,
    # moved to float64, keeps float64 ones: what comes from the buffers agrees to float32
    buffer_tol = TOL[np.float32] if dtype == np.float64 else tol
    if not job["kwargs"].get("track_running_stats", True):
        # no running statistics: eval mode normalizes each rank's batch by its own
        # statistics, without communicating (as torch.nn.SyncBatchNorm)
        for r, x in zip(ranks, job["eval_input"], strict=True):
            plain = bnlib.BatchNorm2d(**job["kwargs"]).eval()
            np.testing.assert_allclose(r["eval_y"], plain(x), **tol)
            ref = torch.nn.functional.batch_norm(torch.from_numpy(x), None, None, training=True)
            np.testing.assert_allclose(r["eval_y"], ref.numpy(), **tol)
        for ref in (expected, ours):
            ref["eval_y"] = np.concatenate([r["eval_y"] for r in ranks])
    for key in ("y", "dx", "eval_y"):
        got = np.concatenate([r[key] for r in ranks])
        assert got.dtype == dtype
        np.testing.assert_allclose(
            got, expected[key], **(buffer_tol if key == "eval_y" else tol), err_msg=key
        )
        np.testing.assert_allclose(got, ours[key], **tol, err_msg=key)
    if job["kwargs"].get("affine", True):
        # each rank's share; the shares add up to the whole batch's gradient
        loose = dict(rtol=1e-2, atol=1e-2) if "large mean" in name else {}
        for key in ("grad_weight", "grad_bias"):
            total = np.sum([r[key] for r in ranks], axis=0)
            np.testing.assert_allclose(
                total, expected[key], **(loose or dict(rtol=1e-4, atol=1e-4)), err_msg=key
            )
        # and against float64 arithmetic on the same values
        x = np.concatenate([b[-1] for b in job["batches"]]).astype(np.float64)
        dy = np.concatenate([d[-1] for d in job["dys"]]).astype(np.float64)
        mean, var = x.mean(axis=(0, 2, 3), keepdims=True), x.var(axis=(0, 2, 3), keepdims=True)
        xhat = (x - mean) / np.sqrt(var + job["kwargs"].get("eps", 1e-5))
        exact = {"grad_weight": (dy * xhat).sum(axis=(0, 2, 3)), "grad_bias": dy.sum((0, 2, 3))}
        for key, value in exact.items():
            total = np.sum([r[key] for r in ranks], axis=0)
            np.testing.assert_allclose(total, value, rtol=1e-5, atol=1e-5, err_msg=key)
    for key, value in expected["state"].items():
        for r in ranks:  # every rank holds the same buffers, those of the whole batch
            np.testing.assert_allclose(r["state"][key], value, **buffer_tol, err_msg=key)
            np.testing.assert_allclose(r["state"][key], ours["state"][key], **tol, err_msg=key)
            np.testing.assert_array_equal(r["state"][key], ranks[0]["state"][key])


def ranks_var0(job):
    """The unbiased float64 variance of the first step's whole batch."""
    return (
        np.concatenate([b[0] for b in job["batches"]])
        .astype(np.float64)
        .var(axis=(0, 2, 3), ddof=1)
    )


def test_grad_shares_are_each_ranks_own_sums(runs):
    """grad_weight on a rank is Σ dy·x̂ over that rank's values (x̂ with global stats)."""
    job, ranks = runs[0][2, "float32 unequal"]
    xs = [b[-1] for b in job["batches"]]
    dys = [d[-1] for d in job["dys"]]
    whole = np.concatenate(xs).astype(np.float64)
    mean = whole.mean(axis=(0, 2, 3))
    invstd = 1 / np.sqrt(whole.var(axis=(0, 2, 3)) + 1e-5)
    for x, dy, r in zip(xs, dys, ranks, strict=True):
        xhat = (x - mean[:, None, None]) * invstd[:, None, None]
        np.testing.assert_allclose(r["grad_weight"], (dy * xhat).sum(axis=(0, 2, 3)), rtol=1e-4)
        np.testing.assert_allclose(r["grad_bias"], dy.sum(axis=(0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_plain_per_rank_batchnorm_differs(runs):
    """The point of syncing: each rank's own BatchNorm2d gives other outputs."""
    job, ranks = runs[0][2, "float32 unequal"]
    for x, r in zip((b[-1] for b in job["batches"]), ranks, strict=True):
        plain = bnlib.BatchNorm2d(C)
        plain.weight[...], plain.bias[...] = job["weight"], job["bias"]
        assert np.max(np.abs(plain(x) - r["y"])) > 1e-2


@pytest.mark.parametrize("name", list(error_jobs()))
def test_disagreeing_ranks_all_raise_a_clear_error(runs, name):
    _, errors, errors_out, _ = runs
    pattern = errors[name][1]
    for rank_out in errors_out[name]:
        if pattern is None:
            assert "error" not in rank_out and rank_out["state"]["num_batches_tracked"] == 1
        else:
            assert "error" in rank_out, rank_out.keys()
            # raised by the check itself, not by a collective that waited for the others
            assert "Timed out" not in rank_out["error"], rank_out["error"]
            import re

            assert re.search(pattern, rank_out["error"]), rank_out["error"]


def test_numpy_shards_match_the_processes(runs):
    """bnlib.sharded on array shards gives what the processes gave."""
    job, ranks = runs[0][3, "float64 unequal, empty rank"]
    bn = SyncBatchNorm2d(**job["kwargs"])  # no process group: plain BatchNorm2d
    assert bn(np.concatenate([b[0] for b in job["batches"]])).shape[0] == 5
    xs = [b[-1] for b in job["batches"]]
    ys, stats = sharded.sync_batch_norm(xs, job["weight"], job["bias"])
    dxs, gws, gbs = sharded.sync_batch_norm_backward(
        [d[-1] for d in job["dys"]], xs, stats, job["weight"]
    )
    for y, dx, gw, r in zip(ys, dxs, gws, ranks, strict=True):
        np.testing.assert_allclose(y, r["y"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, r["dx"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(gw.astype(np.float32), r["grad_weight"], rtol=1e-6)


def test_single_process_is_batchnorm2d():
    """Without a process group, and in eval mode, SyncBatchNorm2d is BatchNorm2d."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, C, 3, 3)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    sync, plain = SyncBatchNorm2d(C, momentum=None), bnlib.BatchNorm2d(C, momentum=None)
    for _ in range(2):
        np.testing.assert_array_equal(sync(x), plain(x))
        np.testing.assert_array_equal(sync.backward(dy), plain.backward(dy))
    np.testing.assert_array_equal(sync.grad_weight, plain.grad_weight)
    np.testing.assert_array_equal(sync.eval()(x), plain.eval()(x))
    assert repr(sync) == "Sync" + repr(plain)
    state = sync.state_dict()
    other = SyncBatchNorm2d(C)
    other.load_state_dict(state)
    np.testing.assert_array_equal(other.running_var, plain.running_var)
    with pytest.raises(ValueError, match="4D"):
        sync.train()(x[0])
    # from torch's SyncBatchNorm (the same state dict keys), as BatchNorm2d.from_torch
    torch_sync = torch.nn.SyncBatchNorm(C, momentum=None)
    torch_sync(torch.from_numpy(x))  # no process group: plain batch norm, one step
    copied = SyncBatchNorm2d.from_torch(torch_sync)
    assert isinstance(copied, SyncBatchNorm2d) and copied.momentum is None
    np.testing.assert_allclose(copied.running_var, torch_sync.running_var.numpy(), rtol=1e-6)


def silent_rank_worker(rank, world_size):
    """Rank 1 never calls the module: rank 0 must not wait forever."""
    bn = SyncBatchNorm2d(C)
    if rank == 0:
        bn(np.ones((2, C, 2, 2), np.float32))
    else:
        time.sleep(30)


def sleeping_worker(rank, world_size):
    time.sleep(60)


def _no_children_left():
    """Processes this test process started that are still there (zombies included)."""
    return psutil.Process().children(recursive=True)


def test_a_silent_rank_fails_within_the_collective_timeout():
    """Rank 0's all-gather gives up after the collective timeout (2 s), long before run()'s
    own time limit (60 s) would stop it: the error is the collective's, naming its 2 s."""
    with pytest.raises(torch.multiprocessing.ProcessRaisedException) as raised:
        distributed.run(silent_rank_worker, 2, timeout=60, collective_timeout=2)
    assert "Timed out waiting 2000ms" in str(raised.value)
    assert "in _gather" in str(raised.value)
    assert not _no_children_left()


def test_run_stops_at_its_time_limit_and_cleans_up():
    with pytest.raises(TimeoutError, match="did not finish within 3 s"):
        distributed.run(sleeping_worker, 1, timeout=3)
    assert not _no_children_left()


def test_free_port_is_bindable():
    import socket

    port = distributed.free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


@given(
    sizes=st.lists(st.integers(0, 4), min_size=1, max_size=4).filter(lambda s: sum(s) > 0),
    c=st.integers(1, 3),
    hw=st.sampled_from([(1, 1), (2, 3), (4, 4)]),
    dtype=st.sampled_from([np.float32, np.float64]),
    affine=st.booleans(),
    mean=st.sampled_from([0.0, 5.0, 1e3]),
    seed=st.integers(0, 2**32 - 1),
)
def test_sharded_algorithm_matches_torch_on_the_whole_batch(
    sizes, c, hw, dtype, affine, mean, seed
):
    """Shards of any sizes (empty ones too): the outputs, input gradients and the sums of
    the γ, β shares are those of torch's batch norm on the concatenated batch."""
    if sum(sizes) * hw[0] * hw[1] < 2:
        sizes = [*sizes, 1]
        if hw == (1, 1):
            sizes = [*sizes, 1]
    rng = np.random.default_rng(seed)
    xs = [(mean + rng.standard_normal((n, c, *hw))).astype(dtype) for n in sizes]
    dys = [rng.standard_normal(x.shape).astype(dtype) for x in xs]
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    bias = rng.standard_normal(c).astype(dtype) if affine else None
    ys, global_stats = sharded.sync_batch_norm(xs, weight, bias)
    dxs, dws, dbs = sharded.sync_batch_norm_backward(dys, xs, global_stats, weight)

    x = torch.from_numpy(np.concatenate(xs)).requires_grad_()
    w = None if weight is None else torch.from_numpy(weight).requires_grad_()
    b = None if bias is None else torch.from_numpy(bias).requires_grad_()
    y = torch.nn.functional.batch_norm(x, None, None, w, b, training=True)
    y.backward(torch.from_numpy(np.concatenate(dys)))
    tol = dict(rtol=1e-4, atol=1e-4 * (1 + mean / 100)) if dtype == np.float32 else {}
    tol = tol or dict(rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.concatenate(ys), y.detach().numpy(), **tol)
    np.testing.assert_allclose(np.concatenate(dxs), x.grad.numpy(), **tol)
    if affine:
        np.testing.assert_allclose(np.sum(dws, axis=0), w.grad.numpy(), **tol)
        np.testing.assert_allclose(np.sum(dbs, axis=0), b.grad.numpy(), **tol)
    count, _, _ = global_stats
    assert count == sum(sizes) * hw[0] * hw[1]


def test_the_numpy_core_does_not_import_torch():
    """bnlib, bnlib.stats and bnlib.sharded work with NumPy alone."""
    import subprocess
    import sys

    code = (
        "import sys; import bnlib, bnlib.stats, bnlib.sharded; "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("weight_dtype", [None, np.float32, np.float64])
def test_sharded_gradients_take_torchs_dtypes(weight_dtype):
    """Each shard's dx in its dtype; each rank's share of dγ and dβ in the weight's (the
    shards' without one), as bnlib.batch_norm_backward's, which they add up to."""
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((n, 2, 3, 3)).astype(np.float32) for n in (2, 3)]
    dys = [rng.standard_normal(x.shape).astype(np.float32) for x in xs]
    weight = None if weight_dtype is None else np.array([0.5, 2.0], weight_dtype)
    _, stats = sharded.sync_batch_norm(xs, weight)
    dxs, dws, dbs = sharded.sync_batch_norm_backward(dys, xs, stats, weight)
    _, dweight, dbias = bnlib.batch_norm_backward(np.concatenate(dys), np.concatenate(xs), weight)
    assert all(dx.dtype == np.float32 for dx in dxs)
    assert {share.dtype for share in dws + dbs} == {dweight.dtype} == {dbias.dtype}
    np.testing.assert_allclose(np.sum(dws, axis=0), dweight, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.sum(dbs, axis=0), dbias, rtol=1e-5, atol=1e-5)
