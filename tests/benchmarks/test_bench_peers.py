#!/usr/bin/python3
"""Tests of scripts/bench-peers and benchmarks/peers/public_optimizers.py without the peers' clones: the
optimizer-state byte count against explicit sums, the per-child peak RSS, the pair ratios against
hand-computed ones, the settings that pair each plugin with its public implementation, the shim that
computes (torch._foreach_lerp_ where torch lacks it), the IDX prefix reader and the skip reasons."""
import dataclasses
import gzip
import importlib.machinery
import importlib.util
import os
import struct
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
SCRIPT = os.path.join(ROOT, "scripts", "bench-peers")
sys.path.insert(0, os.path.join(ROOT, "benchmarks", "peers"))
import public_optimizers  # noqa: E402

try:
    import torch
except ImportError:
    torch = None


def load_script():
    loader = importlib.machinery.SourceFileLoader("bench_peers", SCRIPT)
    spec = importlib.util.spec_from_loader("bench_peers", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench = load_script()


@unittest.skipIf(torch is None, "python3-torch is not installed")
class StateBytes(unittest.TestCase):
    def test_sgd_momentum_state_is_one_buffer_per_parameter(self):
        model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        model(torch.randn(4, 7)).sum().backward()
        optimizer.step()
        expected = sum(p.numel() * 4 for p in model.parameters())  # (7·5 + 5 + 5·3 + 3) float32 buffers
        self.assertEqual(expected, 232)
        self.assertEqual(public_optimizers.state_bytes([optimizer.state], list(model.parameters())), expected)

    def test_views_and_repeats_count_once_parameters_not_at_all(self):
        @dataclasses.dataclass
        class Factors:
            left: object
            right: object

        parameter = torch.nn.Parameter(torch.zeros(6))
        shared = torch.zeros(10)  # float32: 40 bytes, reached four times, twice through views
        other = torch.zeros(3, dtype=torch.float64)  # 24 bytes
        cyclic = {"shared": shared}
        cyclic["self"] = cyclic
        roots = [{"a": shared, "b": shared[2:5], "count": 3, "name": "x"}, [shared.view(2, 5)],
                 Factors(left=other, right=parameter.data), (parameter,), cyclic]
        self.assertEqual(public_optimizers.state_bytes(roots, [parameter]), 40 + 24)
        # A copy of the parameter is state.
        self.assertEqual(public_optimizers.state_bytes([{"copy": parameter.detach().clone()}], [parameter]), 24)


class PeakResidentSetSize(unittest.TestCase):
    def test_each_child_reports_its_own_peak(self):
        # Measured from a launcher without torch, as bench-peers runs (a child's ru_maxrss is at least its
        # launcher's resident size at the spawn). The large child first: a maximum over all children so
        # far would report it for the small one too.
        launcher = f"""
import importlib.machinery, importlib.util, sys
loader = importlib.machinery.SourceFileLoader("bench_peers", {SCRIPT!r})
module = importlib.util.module_from_spec(importlib.util.spec_from_loader("bench_peers", loader))
loader.exec_module(module)
_, large = module.run_measured([sys.executable, "-c", "b = b'x' * (160 << 20); print(len(b))"])
output, small = module.run_measured([sys.executable, "-c", "print('small')"])
print(large, small, output.strip())
"""
        large, small, output = bench.run_measured([sys.executable, "-c", launcher])[0].split()
        self.assertEqual(output, "small")
        self.assertGreaterEqual(int(large), 160 << 20)
        self.assertLess(int(small), 80 << 20)

    def test_a_failing_child_is_an_error_with_its_stderr(self):
        with self.assertRaisesRegex(RuntimeError, "status 3:\n.*went wrong"):
            bench.run_measured([sys.executable, "-c", "import sys; sys.stderr.write('went wrong'); sys.exit(3)"])


def contestant(name, runtime, samples):
    c = bench.Contestant(name, command=["unused"])
    c.runtime, c.samples = runtime, samples
    return c


def sample(seconds, rss, state, cpu=None, load=0.5):
    return {"seconds_per_step": seconds, "cpu_seconds_per_step": cpu or seconds, "load_average": load,
            "peak_rss_bytes": rss, "optimizer_state_bytes": state,
            "phase_seconds_per_step": {"data": 0.1 * seconds, "forward": 0.2 * seconds,
                                       "backward": 0.3 * seconds, "optimizer": 0.4 * seconds}}


class PairRatios(unittest.TestCase):
    def setUp(self):
        ngdbench, python = "ngdbench", "python"
        self.sgd = {"ngdbench": contestant("ngdbench sgd", ngdbench, [sample(1, 100, 0), sample(1, 110, 0)]),
                    "python": contestant("PyTorch sgd", python, [sample(1, 200, 0), sample(1, 190, 0)])}
        self.ours = contestant("ngdbench x", ngdbench, [sample(2, 130, 30), sample(3, 150, 30, cpu=1.5)])
        self.theirs = contestant("Python x", python, [sample(8, 260, 60), sample(4, 210, 60, load=4.0)])

    def test_ratios_are_taken_within_a_repetition(self):
        entry = bench.pair_entry(self.ours, self.theirs, self.sgd, cores=2)
        self.assertEqual(entry["time"]["values"], [2 / 8, 3 / 4])
        self.assertEqual(entry["cpu_time"]["values"], [2 / 8, 1.5 / 4])
        self.assertEqual(entry["peak_rss"]["values"], [130 / 260, 150 / 210])
        # (130 − 100) / (260 − 200) and (150 − 110) / (210 − 190)
        self.assertEqual(entry["peak_rss_above_sgd"]["values"], [0.5, 2.0])
        self.assertEqual(entry["optimizer_state"]["values"], [0.5, 0.5])
        self.assertEqual(entry["contended"], 1)
        self.assertEqual(entry["time"]["median"], (0.25 + 0.75) / 2)
        # Time 0.5 is not above the goal; the above-SGD median (0.5 + 2) / 2 is above 1.0.
        self.assertEqual(entry["missed"], ["peak_rss_above_sgd"])
        profile = entry["profile"]["Python x"]
        self.assertEqual(profile["peak_rss_bytes"], 235)
        self.assertEqual(profile["sgd_peak_rss_bytes"], 195)
        self.assertAlmostEqual(profile["phase_seconds_per_step"]["optimizer"], 0.4 * 6)

    def test_unknown_state_and_missing_sgd_give_no_ratio(self):
        for s in self.ours.samples:
            s["optimizer_state_bytes"] = None
        del self.sgd["python"]
        entry = bench.pair_entry(self.ours, self.theirs, self.sgd, cores=2)
        self.assertIsNone(entry["optimizer_state"])
        self.assertIsNone(entry["peak_rss_above_sgd"])
        self.assertNotIn("profile", entry)

    def test_a_missed_time_goal_carries_the_profile(self):
        self.theirs.samples[0]["seconds_per_step"] = 2.5
        entry = bench.pair_entry(self.ours, self.theirs, self.sgd, cores=2)
        self.assertIn("time", entry["missed"])
        self.assertEqual(set(entry["profile"]), {"ngdbench x", "Python x"})

    def test_a_skipped_side_skips_the_pair(self):
        self.theirs.missing = "no clone"
        self.assertEqual(bench.pair_entry(self.ours, self.theirs, self.sgd, cores=2)["skipped"], "no clone")


class PairedSettings(unittest.TestCase):
    """Each ngdbench contestant's hparams say the same as its peer's settings (docs/optimizers.md)."""

    def settings(self, ngdbench_name, worker):
        hparams = next(h for name, _, h in bench.NGDBENCH_RUNS if name == ngdbench_name)
        return hparams, next(p for p in bench.PEERS if p.worker == worker).settings

    def test_every_pair_names_existing_contestants(self):
        names = {name for name, _, _ in bench.NGDBENCH_RUNS} | {p.contestant for p in bench.PEERS}
        for ours, theirs in bench.PAIRS:
            self.assertIn(ours, names)
            self.assertIn(theirs, names)

    def test_nadamw(self):
        ours, theirs = self.settings("ngdbench nadamw", "python-nadamw")
        self.assertEqual((ours["lr"], ours["beta1"], ours["beta2"], ours["eps"], ours["weight_decay"]),
                         (theirs["lr"], *theirs["betas"], theirs["eps"], theirs["weight_decay"]))

    def test_muon_both_precisions(self):
        for name in ("ngdbench muon", "ngdbench muon bfloat16"):
            ours, theirs = self.settings(name, "python-muon")
            self.assertEqual((ours["lr"], ours["momentum"], ours["weight_decay"], ours["head"]),
                             (theirs["lr"], theirs["momentum"], theirs["weight_decay"], "adamw"))
            self.assertEqual((ours["adamw_lr"], ours["adamw_beta1"], ours["adamw_beta2"], ours["adamw_eps"],
                              ours["adamw_weight_decay"]),
                             (theirs["adam_lr"], *theirs["adam_betas"], theirs["adam_eps"], theirs["adam_weight_decay"]))
        self.assertEqual(self.settings("ngdbench muon bfloat16", "python-muon")[0]["ns_dtype"], "bfloat16")

    def test_soap(self):
        ours, theirs = self.settings("ngdbench soap", "python-soap")
        # "The factors decay as beta2" is null here and -1 in the public soap.py.
        stat_decay = -1 if ours["stat_decay"] is None else ours["stat_decay"]
        self.assertEqual((ours["lr"], ours["beta1"], ours["beta2"], stat_decay, ours["eps"],
                          ours["weight_decay"], ours["inverse_interval"], ours["max_preconditioner_dim"]),
                         (theirs["lr"], *theirs["betas"], theirs["shampoo_beta"], theirs["eps"],
                          theirs["weight_decay"], theirs["precondition_frequency"], theirs["max_precond_dim"]))

    def test_shampoo(self):
        ours, theirs = self.settings("ngdbench shampoo", "python-shampoo")
        # "Start at the first refresh" is null here and -1 in Distributed Shampoo.
        start = -1 if ours["start_preconditioning_step"] is None else ours["start_preconditioning_step"]
        self.assertEqual((ours["lr"], ours["beta1"], ours["beta2"], ours["eps"], ours["weight_decay"],
                          ours["max_preconditioner_dim"], ours["inverse_interval"], start,
                          ours["grafting_beta2"], ours["grafting_eps"]),
                         (theirs["lr"], *theirs["betas"], theirs["epsilon"], theirs["weight_decay"],
                          theirs["max_preconditioner_dim"], theirs["precondition_frequency"],
                          theirs["start_preconditioning_step"], theirs["grafting_beta2"], theirs["grafting_epsilon"]))

    def test_eva(self):
        ours, theirs = self.settings("ngdbench eva", "python-eva")
        self.assertEqual((ours["lr"], ours["momentum"], ours["weight_decay"], ours["damping"], ours["kl_clip"],
                          ours["stat_interval"]),
                         (theirs["lr"], theirs["momentum"], theirs["weight_decay"], theirs["damping"],
                          theirs["kl_clip"], theirs["fac_update_freq"]))
        self.assertAlmostEqual(ours["stat_decay"], 1 - theirs["factor_decay"])
        self.assertEqual(theirs["kfac_batch_size"], bench.BATCH)

    def test_kfac(self):
        for name in ("ngdbench kfac eigen", "ngdbench kfac inverse"):
            ours, theirs = self.settings(name, "python-kfac")
            self.assertEqual((ours["lr"], ours["momentum"], ours["stat_decay"], ours["damping"], ours["kl_clip"],
                              ours["t_cov"], ours["t_inv"]),
                             (theirs["lr"], theirs["momentum"], theirs["stat_decay"], theirs["damping"],
                              theirs["kl_clip"], theirs["TCov"], theirs["TInv"]))


@unittest.skipIf(torch is None, "python3-torch is not installed")
class ForeachLerpShim(unittest.TestCase):
    def test_lerp_of_each_tensor(self):
        installed = getattr(torch, "_foreach_lerp_", None)
        public_optimizers.shim_torch_for_distributed_shampoo()
        a = [torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([[0.0, -4.0]], dtype=torch.float64)]
        b = [torch.tensor([3.0, 6.0], dtype=torch.float64), torch.tensor([[10.0, 4.0]], dtype=torch.float64)]
        torch._foreach_lerp_(a, b, 0.25)
        self.assertEqual(a[0].tolist(), [1.5, 3.0])
        self.assertEqual(a[1].tolist(), [[2.5, -2.0]])
        if installed is not None:  # the installed torch's own kernel is kept
            self.assertIs(torch._foreach_lerp_, installed)


class IdxPrefix(unittest.TestCase):
    def test_reads_only_the_first_records(self):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "images.gz")
            with gzip.open(path, "wb") as file:
                file.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 5, 2, 2) + bytes(range(20)))
            first = bench.read_idx(path, 3)
            self.assertEqual(first.shape, (3, 2, 2))
            self.assertEqual(first.flatten().tolist(), list(range(12)))
            self.assertEqual(bench.read_idx(path, 99).shape, (5, 2, 2))


class SkipReasons(unittest.TestCase):
    def test_missing_clone_and_wrong_folder_are_named(self):
        peer = next(p for p in bench.PEERS if p.worker == "python-soap")
        self.assertIn("--soap DIR or set SOAP_DIR", peer.missing(""))
        with tempfile.TemporaryDirectory() as folder:
            self.assertIn("none of soap.py", peer.missing(folder))
            open(os.path.join(folder, "soap.py"), "w").close()
            self.assertIsNone(peer.missing(folder))
            self.assertEqual(peer.locate(folder), os.path.join(folder, "soap.py"))


if __name__ == "__main__":
    unittest.main()
