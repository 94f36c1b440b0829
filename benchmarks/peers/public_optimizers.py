"""The public optimizer implementations scripts/bench-peers measures ngdbench's plugins against.

For each: the clone it is read from (a flag and an environment variable; never downloaded), the file
that marks a usable clone, and how its optimizer is built on the benchmark's model with the settings
that make it comparable with the plugin (docs/optimizers.md, each plugin's section). The shims that let
a peer written for a newer torch or for a distributed launcher run in one plain process on the
installed torch are here, each with the reason; no peer file is changed or copied.

torch is imported inside the builders only, so the orchestrating process needs no torch.
"""
import dataclasses
import importlib.util
import os
import sys
import types
from typing import Callable, List, Optional


@dataclasses.dataclass
class PeerOptimizer:
    """What the worker's loop calls around the training backward pass."""
    zero_grad: Callable[[], None]
    step: Callable[[], None]
    # The containers whose tensors the optimizer carries between steps (walked by state_bytes).
    state: Callable[[], list]
    # An extra backward before the training one (the Python KFAC's sampled-label pass), or None.
    curvature: Optional[Callable[[object, object], None]] = None


@dataclasses.dataclass(frozen=True)
class PublicPeer:
    worker: str          # the worker's name for it: scripts/bench-peers --worker WORKER
    contestant: str      # its row in the report
    plugin: str          # the ngdbench plugin it is compared with
    flag: str            # scripts/bench-peers --FLAG DIR
    environment: str     # or $ENVIRONMENT
    repository: str      # where to clone it from
    markers: tuple       # paths in the clone, one of which must exist (the first found is used)
    build: Callable      # build(clone, marker path, model, settings) -> PeerOptimizer
    settings: dict       # the peer's settings, in its own names

    def locate(self, clone):
        """The marker file in the clone, or None."""
        if not clone:
            return None
        for marker in self.markers:
            path = os.path.join(clone, marker)
            if os.path.isfile(path):
                return path
        return None

    def missing(self, clone):
        """Why the peer cannot run from this clone, or None."""
        if not clone:
            return f"no clone of {self.repository}: pass --{self.flag} DIR or set {self.environment}"
        if self.locate(clone) is None:
            return f"{clone} is not a clone of {self.repository} (none of {', '.join(self.markers)} in it)"
        return None


# ---- the optimizer's state in bytes ----------------------------------------------------------------

def state_bytes(roots, parameters):
    """Bytes of the distinct tensor storages reachable from roots through dicts, lists, tuples and
    dataclasses, leaving out the parameters' own storages (state that aliases a parameter costs nothing)."""
    import torch

    def storage(tensor):
        return tensor.untyped_storage() if hasattr(tensor, "untyped_storage") else tensor.storage()

    excluded = {storage(p).data_ptr() for p in parameters}
    counted = {}
    pending = list(roots)
    visited = set()
    while pending:
        item = pending.pop()
        if torch.is_tensor(item):
            s = storage(item)
            if s.data_ptr() not in excluded:
                counted[s.data_ptr()] = s.nbytes()
            continue
        if id(item) in visited:
            continue
        visited.add(id(item))
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            pending.extend(getattr(item, field.name) for field in dataclasses.fields(item))
    return sum(counted.values())


# ---- importing peers ------------------------------------------------------------------------------

def import_from_clone(clone, module):
    """Imports MODULE with the clone's root first on the path (each worker process imports one peer)."""
    if clone not in sys.path:
        sys.path.insert(0, clone)
    return importlib.import_module(module)


def load_file(path, name):
    """Imports one file of a clone as module NAME."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _AnyName(type):
    def __getattr__(cls, attr):
        return cls


class _Inert(metaclass=_AnyName):
    """Stands for every name of a stubbed module: a class (isinstance checks are False), whose attributes
    and subscripts are itself (enum members, generic annotations). Only code paths a single process never
    takes would call it."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("a stubbed distributed-training name was used in a single-process run")

    def __class_getitem__(cls, item):
        return cls


def stub_module(name):
    module = types.ModuleType(name)
    module.__getattr__ = lambda attr: _Inert
    module.__path__ = []
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


# ---- the peers -----------------------------------------------------------------------------------

def build_pytorch_sgd(model, settings):
    import torch
    optimizer = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"])
    return PeerOptimizer(optimizer.zero_grad, optimizer.step, lambda: [optimizer.state])


def build_kfac_pytorch(clone, marker, model, settings):
    import torch
    kfac = import_from_clone(clone, "optimizers.kfac")
    optimizer = kfac.KFACOptimizer(model, lr=settings["lr"], momentum=settings["momentum"],
                                   stat_decay=settings["stat_decay"], damping=settings["damping"],
                                   kl_clip=settings["kl_clip"], weight_decay=0, TCov=settings["TCov"],
                                   TInv=settings["TInv"])

    def curvature(outputs, criterion):
        # The peer's main.py: the true Fisher from labels sampled from the model's predictions.
        if optimizer.steps % optimizer.TCov != 0:
            return
        optimizer.acc_stats = True
        with torch.no_grad():
            sampled = torch.multinomial(torch.nn.functional.softmax(outputs.detach(), dim=1), 1).squeeze(1)
        criterion(outputs, sampled).backward(retain_graph=True)
        optimizer.acc_stats = False
        optimizer.zero_grad()

    return PeerOptimizer(optimizer.zero_grad, optimizer.step,
                         lambda: [optimizer.state, optimizer.m_aa, optimizer.m_gg, optimizer.Q_a, optimizer.Q_g,
                                  optimizer.d_a, optimizer.d_g],
                         curvature)


def build_algoperf_nadamw(clone, marker, model, settings):
    """AlgoPerf's baseline file imports the benchmark's framework (absl, algoperf.spec, and through
    algoperf.pytorch_utils jax and TensorFlow) for its submission functions; the NAdamW class uses torch
    alone. Stubs of those three modules (pytorch_setup answering 'no DDP, CPU') let the file import."""
    import torch
    if importlib.util.find_spec("absl") is None:
        absl = types.ModuleType("absl")
        absl.logging = types.ModuleType("absl.logging")
        sys.modules.update({"absl": absl, "absl.logging": absl.logging})
    algoperf = types.ModuleType("algoperf")
    algoperf.spec = stub_module("algoperf.spec")
    algoperf.pytorch_utils = types.ModuleType("algoperf.pytorch_utils")
    algoperf.pytorch_utils.pytorch_setup = lambda: (False, 0, torch.device("cpu"), 0)
    sys.modules.update({"algoperf": algoperf, "algoperf.spec": algoperf.spec,
                        "algoperf.pytorch_utils": algoperf.pytorch_utils})
    baseline = load_file(marker, "algoperf_nadamw_baseline")
    optimizer = baseline.NAdamW(model.parameters(), lr=settings["lr"], betas=settings["betas"], eps=settings["eps"],
                                weight_decay=settings["weight_decay"])
    return PeerOptimizer(optimizer.zero_grad, optimizer.step, lambda: [optimizer.state])


def build_muon(clone, marker, model, settings):
    """The hidden layers' weights on Muon; the head (the last Linear) and every bias on its auxiliary
    Adam, as muon.py advises and the plugin does (head = adamw)."""
    import torch
    muon = load_file(marker, "keller_jordan_muon")
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    hidden = [m.weight for m in linears[:-1]]
    others = [p for p in model.parameters() if all(p is not w for w in hidden)]
    optimizer = muon.SingleDeviceMuonWithAuxAdam([
        dict(params=hidden, use_muon=True, lr=settings["lr"], momentum=settings["momentum"],
             weight_decay=settings["weight_decay"]),
        dict(params=others, use_muon=False, lr=settings["adam_lr"], betas=settings["adam_betas"],
             eps=settings["adam_eps"], weight_decay=settings["adam_weight_decay"])])
    return PeerOptimizer(optimizer.zero_grad, optimizer.step, lambda: [optimizer.state])


def build_soap(clone, marker, model, settings):
    soap = load_file(marker, "nikhilvyas_soap")
    optimizer = soap.SOAP(model.parameters(), **settings)
    return PeerOptimizer(optimizer.zero_grad, optimizer.step, lambda: [optimizer.state])


def shim_torch_for_distributed_shampoo():
    """distributed_shampoo wants torch >= 2.8 (its pyproject). On torch 1.13 it imports with these shims,
    each applied only where the installed torch lacks the name, and runs its single-device path:
    - torch.distributed.device_mesh and .tensor (DTensor) do not exist, and torch.distributed.fsdp fails
      to import under Python 3.11 (its _shard dataclasses have mutable defaults): inert stubs, used only
      by the distributors for several processes;
    - torch.optim.optimizer.StateDict and ParamsT (type aliases): dict and object;
    - torch.compile (its signature is read at import to build ShampooPT2CompileConfig; not called without
      that config) and the decorator torch.compiler.disable: the function itself;
    - Optimizer.register_state_dict_post_hook / register_load_state_dict_pre_hook / _post_hook: no-ops
      (they only reshape state_dict(), which the benchmark never calls);
    - torch._foreach_lerp_ (the filtered gradient): a per-tensor lerp_, which is also what the foreach
      kernel does on the CPU."""
    import torch
    optimizer_module = importlib.import_module("torch.optim.optimizer")
    for name in ("torch.distributed.device_mesh", "torch.distributed.tensor"):
        if importlib.util.find_spec(name) is None:
            stub_module(name)
    try:
        import torch.distributed.fsdp  # noqa: F401
    except Exception:
        stub_module("torch.distributed.fsdp")
    for alias, value in (("StateDict", dict), ("ParamsT", object)):
        if not hasattr(optimizer_module, alias):
            setattr(optimizer_module, alias, value)
    if not hasattr(torch, "compile"):
        def compile(model=None, *, fullgraph: bool = False, dynamic=None, backend="inductor", mode=None,
                    options=None, disable: bool = False):
            return model
        torch.compile = compile
    if not hasattr(torch, "compiler"):
        torch.compiler = types.ModuleType("torch.compiler")
        torch.compiler.disable = lambda fn=None, recursive=True: fn
        sys.modules["torch.compiler"] = torch.compiler
    for hook in ("register_state_dict_post_hook", "register_load_state_dict_pre_hook",
                 "register_load_state_dict_post_hook"):
        if not hasattr(torch.optim.Optimizer, hook):
            setattr(torch.optim.Optimizer, hook, lambda self, fn, prepend=False: None)
    if not hasattr(torch, "_foreach_lerp_"):
        def foreach_lerp_(tensors, ends, weight):
            for tensor, end in zip(tensors, ends):
                tensor.lerp_(end, weight)
        torch._foreach_lerp_ = foreach_lerp_


def build_distributed_shampoo(clone, marker, model, settings):
    """Symmetric packing of the factors (their default) indexes with int32 tensors, which torch 1.13
    rejects: where indexing does, the factors are stored whole, as the plugin stores them."""
    import torch
    shim_torch_for_distributed_shampoo()
    shampoo = import_from_clone(clone, "distributed_shampoo")
    index = torch.zeros(1, dtype=torch.int32)
    try:
        torch.zeros(1, 1)[index, index]
        packing = True
    except IndexError:
        packing = False
    optimizer = shampoo.DistributedShampoo(
        model.parameters(), lr=settings["lr"], betas=settings["betas"], epsilon=settings["epsilon"],
        weight_decay=settings["weight_decay"], max_preconditioner_dim=settings["max_preconditioner_dim"],
        precondition_frequency=settings["precondition_frequency"],
        start_preconditioning_step=settings["start_preconditioning_step"],
        grafting_config=shampoo.AdamPreconditionerConfig(beta2=settings["grafting_beta2"],
                                                         epsilon=settings["grafting_epsilon"]),
        preconditioner_config=shampoo.RootInvShampooPreconditionerConfig(use_symmetric_packing=packing))
    return PeerOptimizer(optimizer.zero_grad, optimizer.step, lambda: [optimizer.state])


class _OneProcess:
    """Eva's communication backend for a single process (its own needs Horovod or torch.distributed)."""

    def size(self):
        return 1

    def rank(self):
        return 0


def build_eva(clone, marker, model, settings):
    """Eva's kfac package imports horovod.torch at load (installed or not, it is unused by one process):
    an empty stub stands in where Horovod is missing, and the backend is one process. Eva preconditions
    the gradients; torch SGD steps, as its examples do."""
    import torch
    if importlib.util.find_spec("horovod") is None:
        horovod = types.ModuleType("horovod")
        horovod.torch = types.ModuleType("horovod.torch")
        sys.modules.update({"horovod": horovod, "horovod.torch": horovod.torch})
    import_from_clone(clone, "kfac.backend").comm = _OneProcess()
    eva = import_from_clone(clone, "kfac.eva")
    sgd = torch.optim.SGD(model.parameters(), lr=settings["lr"], momentum=settings["momentum"],
                          weight_decay=settings["weight_decay"])
    preconditioner = eva.KFAC(model, lr=settings["lr"], damping=settings["damping"],
                              fac_update_freq=settings["fac_update_freq"],
                              kfac_update_freq=settings["kfac_update_freq"],
                              kfac_batch_size=settings["kfac_batch_size"], kl_clip=settings["kl_clip"],
                              factor_decay=settings["factor_decay"])

    def step():
        preconditioner.step()
        sgd.step()

    return PeerOptimizer(sgd.zero_grad, step, lambda: [sgd.state, preconditioner.m_a, preconditioner.m_g])


def public_peers(batch, kfac):
    """Every public peer with its settings. BATCH: the benchmark's batch; KFAC: the KFAC settings shared
    by ngdbench's kfac and the Python KFAC."""
    return [
        PublicPeer("python-kfac", "Python KFAC", "kfac", "kfac-pytorch", "KFAC_PYTORCH_DIR",
                   "github.com/alecwangcq/KFAC-Pytorch", ("optimizers/kfac.py",), build_kfac_pytorch,
                   {"lr": kfac["lr"], "momentum": kfac["momentum"], "stat_decay": kfac["stat_decay"],
                    "damping": kfac["damping"], "kl_clip": kfac["kl_clip"], "TCov": kfac["t_cov"],
                    "TInv": kfac["t_inv"]}),
        # The NAdamW class's defaults, which are also the plugin's.
        PublicPeer("python-nadamw", "AlgoPerf NAdamW", "nadamw", "algoperf", "ALGOPERF_DIR",
                   "github.com/mlcommons/algorithmic-efficiency",
                   # The file's places in the repository's history since it imports algoperf (newest first).
                   ("algorithms/baselines/external_tuning/pytorch_nadamw_full_budget.py",
                    "reference_algorithms/qualification_baselines/external_tuning/pytorch_nadamw_full_budget.py",
                    "prize_qualification_baselines/external_tuning/pytorch_nadamw_full_budget.py"),
                   build_algoperf_nadamw, {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01}),
        # muon.py's defaults (Muon lr 0.02, momentum 0.95, wd 0; auxiliary Adam lr 3e-4, betas (0.9, 0.95),
        # eps 1e-10, wd 0), which are also the plugin's.
        PublicPeer("python-muon", "KellerJordan Muon", "muon", "muon", "MUON_DIR", "github.com/KellerJordan/Muon",
                   ("muon.py",), build_muon,
                   {"lr": 0.02, "momentum": 0.95, "weight_decay": 0.0, "adam_lr": 3e-4, "adam_betas": (0.9, 0.95),
                    "adam_eps": 1e-10, "adam_weight_decay": 0.0}),
        # soap.py's defaults, which are also the plugin's.
        PublicPeer("python-soap", "nikhilvyas SOAP", "soap", "soap", "SOAP_DIR", "github.com/nikhilvyas/SOAP",
                   ("soap.py",), build_soap,
                   {"lr": 3e-3, "betas": (0.95, 0.95), "shampoo_beta": -1, "eps": 1e-8, "weight_decay": 0.01,
                    "precondition_frequency": 10, "max_precond_dim": 10000}),
        # README "Example 4" (AdamW -> Shampoo) with the plugin's max_preconditioner_dim 1024 (the constructor's
        # default) and precondition_frequency 100; preconditioning starts at step 100 on both sides.
        PublicPeer("python-shampoo", "Distributed Shampoo", "shampoo", "distributed-shampoo",
                   "DISTRIBUTED_SHAMPOO_DIR", "github.com/facebookresearch/optimizers",
                   ("distributed_shampoo/distributed_shampoo.py",), build_distributed_shampoo,
                   {"lr": 1e-3, "betas": (0.9, 0.999), "epsilon": 1e-12, "weight_decay": 0.0,
                    "max_preconditioner_dim": 1024, "precondition_frequency": 100, "start_preconditioning_step": -1,
                    "grafting_beta2": 0.999, "grafting_epsilon": 1e-8}),
        # eva.py's defaults; factor_decay 0.95 is the plugin's stat_decay 0.05 (docs/optimizers.md#eva), and the
        # means over the whole batch as the plugin takes them (the reference's hooks default to 16 samples).
        PublicPeer("python-eva", "lzhangbv Eva", "eva", "eva", "EVA_DIR", "github.com/lzhangbv/eva",
                   ("kfac/eva.py",), build_eva,
                   {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "damping": 0.03, "kl_clip": 1e-3,
                    "factor_decay": 0.95, "fac_update_freq": 1, "kfac_update_freq": 1, "kfac_batch_size": batch}),
    ]
