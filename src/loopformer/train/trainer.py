"""The one trainer shared by every task.

A task supplies the data plan and the loss; the trainer owns the optimizer, schedule,
bf16 autocast, accumulation, clipping, validation, checkpoints, exact resume, the
progress bar and the JSONL log. Exact resume rebuilds the epoch's batch plan from
(seed, epoch), skips to the saved position and restores optimizer and RNG states.

Non-finite numbers: a step whose loss or gradient norm is not finite stops the run
(``nonfinite=stop``) or is skipped (``skip``); skipped steps use the clock like any
other and at most ``max_skipped_steps`` may follow one another, so a run whose weights
broke cannot skip forever. No checkpoint is ever written from non-finite weights, so
``last/`` and ``best/`` always hold a usable model, and a non-finite score never
becomes the best. A full disk ends the run with one line, the previous checkpoint kept.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import time
from contextlib import nullcontext, suppress
from pathlib import Path
from typing import Any, Protocol

import torch

from ..checkpoint import load_model
from ..device import resolve_device, to_device
from ..errors import CheckpointError, LoopformerError
from .config import TrainConfig, lr_at
from .depth import StepDepth
from .distributed import all_sum, barrier, current, shard
from .optim import build_optimizer
from .state import optimizer_state_from_flat, read_training_state, resolve, restore_rng, write_checkpoint
from .tensorboard import FOLDER as EVENTS_FOLDER, EventLog


class TrainingError(LoopformerError):
    """Training cannot continue (non-finite loss, incompatible resume...)."""


class _CleanStop(Exception):
    """Raised between steps after Ctrl-C / SIGTERM."""


class Task(Protocol):
    def batch_plan(self, epoch: int, seed: int) -> list[Any]: ...
    def make_batch(self, item: Any) -> dict[str, torch.Tensor]: ...
    def count_tokens(self, batch: dict[str, torch.Tensor]) -> int: ...
    def loss(self, model, batch: dict[str, torch.Tensor], label_smoothing: float) -> tuple[torch.Tensor, int]: ...
    def evaluate(self, model) -> dict[str, float]: ...
    def save_assets(self, folder: Path) -> None: ...


class Trainer:
    def __init__(self, task: Task, model: torch.nn.Module, cfg: TrainConfig, out_dir: str | Path) -> None:
        self.task = task
        self.model = model
        self.cfg = cfg
        self.out = Path(out_dir)
        self.dist = current()
        self.device = resolve_device(cfg.device)
        model.to(self.device)  # before the optimizer sees the parameters
        self.net = model  # what the loss runs through (a DDP wrapper when distributed)
        self.fsdp = cfg.fsdp and self.dist.enabled  # one process: nothing to shard
        self.shadow = None  # FSDP: rank 0's unsharded copy for evaluation and saving
        self.depth = StepDepth(cfg, model)  # the loop count of each step (train/depth.py)
        if self.fsdp:
            import copy

            from .fsdp import shard_model

            if self.dist.is_main:
                self.shadow = copy.deepcopy(model)
            shard_model(model)
        elif self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            # a step with fewer loops than trained, or truncated backprop, leaves levels without gradient
            unused = cfg.find_unused_parameters or self.depth.active
            self.net = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)
        if cfg.compile:
            from ..compile import compile_layers

            compile_layers(model)  # after the FSDP shadow copy, which stays eager
        # parameter names in the optimizer's index order (FSDP checkpoints are keyed by name)
        self.opt, self.param_names = build_optimizer(model, cfg, sharded=self.fsdp)
        self.step = 0
        self.epoch = 0
        self.position = 0  # batches of the current epoch already consumed
        self.tokens_seen = 0
        self.train_seconds = 0.0
        self.best_score: float | None = None
        self.history: list[dict[str, Any]] = []
        self._stop_signal: int | None = None
        self._skipped = 0  # consecutive skipped steps (nonfinite=skip)
        self._finite_step = 0  # the last step count at which the weights were seen finite
        self.events = EventLog(self.out / EVENTS_FOLDER, cfg.tensorboard)  # rank 0 writes them

    # --- checkpoints ---------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step, "epoch": self.epoch, "position": self.position,
            "tokens_seen": self.tokens_seen, "train_seconds": self.train_seconds,
            "best_score": self.best_score, "train_config": self.cfg.to_dict(),
        }

    def save(self, which: str = "last") -> Path | None:
        """``last`` (model + training state) is called on every rank; ``best`` (model only)
        on rank 0 right after evaluation, whose model it saves. Non-finite weights are
        never written: the run stops instead, and the previous checkpoint stays the good one."""
        with_state = which == "last"
        if with_state and self._nonfinite_weights():  # every rank takes part
            raise self._broken_error(f"{which}/ was not written")
        model, opt_state = self.model, None
        if self.fsdp:
            if with_state:  # collectives: every rank takes part
                from .fsdp import full_optimizer_state

                self._refresh_shadow()
                opt_state = full_optimizer_state(self.model, self.opt, self.param_names)
            model = self.shadow
        elif with_state:
            opt_state = self.opt.state_dict() if self.dist.is_main else None
        if not self.dist.is_main:
            return None
        if not with_state and self._nonfinite_weights(model, collective=False):
            raise self._broken_error(f"{which}/ was not written")
        folder = self._write(self.out / which, model, self._state() if with_state else None, opt_state)
        if with_state and self.cfg.keep_last > 1:
            snapshot = self.out / f"step-{self.step:08d}"
            try:
                keep_snapshot(folder, snapshot, self.cfg.keep_last)
            except OSError as exc:
                raise TrainingError(f"cannot write {snapshot}: {exc.strerror or exc}; {self._last_good()}") from None
        return folder

    def _write(self, folder: Path, model, state, opt_state) -> Path:
        """Write a checkpoint; a write that fails (a full disk) is one TrainingError line, the
        half-written copy is removed (it would only fill the disk) and the previous one kept."""
        try:
            return write_checkpoint(folder, model, self.task.save_assets, state=state, optimizer_state=opt_state)
        except (OSError, CheckpointError) as exc:
            shutil.rmtree(folder.with_name(folder.name + ".tmp"), ignore_errors=True)
            reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            raise TrainingError(f"cannot write {folder}: {reason}; {self._last_good()}") from None

    # --- non-finite weights --------------------------------------------------------------

    def _nonfinite_weights(self, model: torch.nn.Module | None = None, collective: bool = True) -> bool:
        """Whether any parameter holds NaN or inf (``collective``: agreed by every rank, each
        checking its own shard; every rank must call). Records the step when all are finite."""
        model = self.model if model is None else model
        with torch.no_grad():
            local = [p.to_local() if hasattr(p, "to_local") else p for p in model.parameters()]
            flags = [torch.isfinite(t).all() for t in local if t.numel()]
            bad = float(not bool(torch.stack(flags).all())) if flags else 0.0
        if collective and self.dist.enabled:
            bad = all_sum([bad], self.dist)[0]
        if not bad:
            self._finite_step = self.step
        return bool(bad)

    def _broken_error(self, consequence: str, prefix: str = "") -> TrainingError:
        """The weights are not finite: say in which step(s) they broke and what was kept."""
        first, found = self._finite_step + 1, max(self.step, self._finite_step + 1)
        when = f"in step {found}" if first == found else f"in one of steps {first}-{found}"
        return TrainingError(f"{prefix}the weights became non-finite {when}, so {consequence}; {self._last_good()}")

    def _save_evaluated(self, metrics: dict[str, Any]) -> None:
        """Save ``last`` after an evaluation (every rank). A model whose validation score is
        not finite is broken even when its weights are finite (huge weights give NaN
        outputs), so it is not saved: the run stops and the previous ``last`` stays good."""
        score = metrics.get("score")
        bad = float(score is not None and not math.isfinite(score))  # rank 0 evaluated
        if self.dist.enabled:
            bad = all_sum([bad], self.dist)[0]
        if bad:
            raise TrainingError(f"the validation score is not finite at step {self.step} (the model's outputs "
                                f"broke), so last/ was not written; {self._last_good()}")
        self.save("last")

    def _last_good(self) -> str:
        """Where the newest checkpoint is. Only finite weights are ever saved, so it is good."""
        last = resolve(self.out / "last")
        return "no checkpoint was saved" if last is None else f"the last good checkpoint is in {last}"

    def _refresh_shadow(self) -> None:
        """FSDP, every rank (a collective): gather the shards into rank 0's unsharded copy."""
        from .fsdp import full_model_state

        full = full_model_state(self.model)
        if self.dist.is_main:
            self.shadow.load_state_dict(full)

    def resume(self) -> bool:
        """Continue from ``<out>/last`` if it exists; returns whether it did.

        ``load_model`` verifies every file of the folder (its manifest covers the training
        state too) and ``read_training_state`` every field, before anything is restored;
        what only restoring can reveal (a state the optimizer or the RNG refuses) is one
        CheckpointError naming the folder as well, never a traceback."""
        from ..errors import CheckpointError
        from .state import STATE_JSON, check_optimizer_state

        folder = resolve(self.out / "last")
        if folder is None:
            return False
        saved = load_model(folder)
        meta, tensors = read_training_state(folder, check_manifest=False)  # load_model verified it
        # activation checkpointing changes no parameter: a resume may turn it on or off
        mine = self.model.config
        if saved.config.replace(activation_checkpointing=mine.activation_checkpointing) != mine:
            raise TrainingError(f"{folder} holds a different model config; use another --out or the same settings")
        check_optimizer_state(meta["optimizer"], tensors, self.opt, folder / STATE_JSON)
        try:
            opt_state = optimizer_state_from_flat(tensors, meta["optimizer"])
            if self.fsdp:
                from .fsdp import load_full_state

                load_full_state(self.model, self.opt, saved.state_dict(), opt_state, self.param_names)
            else:
                self.model.load_state_dict(saved.state_dict())
                self.opt.load_state_dict(opt_state)
            restore_rng(tensors, meta["rng"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as exc:
            why = (str(exc).strip().splitlines() or [""])[0][:200]
            raise CheckpointError(f"cannot resume from {folder}: {type(exc).__name__} {why}") from None
        for key in ("step", "epoch", "position", "tokens_seen", "train_seconds", "best_score"):
            setattr(self, key, meta[key])
        return True

    # --- the loop ------------------------------------------------------------------------

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if not self.dist.is_main:
            return
        path = self.out / "metrics.jsonl"
        try:
            with open(path, "ab") as fh:
                start = fh.tell()
                try:
                    fh.write((json.dumps(record) + "\n").encode())
                    fh.flush()
                except OSError:
                    with suppress(OSError):  # no half line for a resumed run to append to
                        fh.truncate(start)
                    raise
        except OSError as exc:
            raise TrainingError(f"cannot append to {path}: {exc.strerror or exc}; {self._last_good()}") from None
        self.events.write(record)  # never raises: a failure is one warning and the events stop

    def _budget_left(self) -> bool:
        if self.step >= self.cfg.max_steps:
            return False
        if self.cfg.max_minutes is not None and self.train_seconds >= self.cfg.max_minutes * 60:
            return False
        return True

    def _batches(self):
        """Yield (item) groups of ``accum_steps`` batches, crossing epochs, from the saved position."""
        while True:
            plan = self.task.batch_plan(self.epoch, self.cfg.seed)
            if not plan:
                raise TrainingError("the training data produced no batches")
            while self.position + self.cfg.accum_steps <= len(plan):
                group = plan[self.position : self.position + self.cfg.accum_steps]
                yield group
            self.epoch += 1
            self.position = 0

    def evaluate(self) -> dict[str, Any]:
        model = self.model
        if self.fsdp:
            self._refresh_shadow()
            model = self.shadow
        if not self.dist.is_main:  # rank 0 evaluates and saves; the others wait for it
            barrier(self.dist)
            return {}
        model.eval()
        try:
            with torch.no_grad():
                metrics = self.task.evaluate(model)
        finally:
            model.train()
        record = {"step": self.step, "kind": "eval", **metrics}
        self._log(record)
        score = metrics.get("score")
        # a NaN score would compare as never worse; weights that broke are never saved (a
        # finite score from them is possible when some parameter goes unused)
        if score is not None and math.isfinite(score) and (self.best_score is None or score > self.best_score) \
                and not self._nonfinite_weights(model, collective=False):
            self.best_score = score
            self.save("best")
        barrier(self.dist)
        return metrics

    def fit(self) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if self.step == 0:
            torch.manual_seed(cfg.seed)
        self.model.train()
        self._finite_step, self._skipped = self.step, 0  # saved and fresh weights are finite
        self.events.start(self.step)
        bar = _progress(cfg, self.step) if self.dist.is_main else None
        handlers = self._install_signal_handlers()
        self._reset_window()
        try:
            batches = self._batches()
            while self._budget_left():
                self._stop_if_asked()
                self._train_step(next(batches), bar)
            final = self.evaluate()
            self._save_evaluated(final)
            return {"step": self.step, "train_seconds": self.train_seconds, "tokens_seen": self.tokens_seen,
                    "best_score": self.best_score, **{f"final_{k}": v for k, v in final.items()}}
        except _CleanStop:
            if self._nonfinite_weights():
                raise self._broken_error("nothing was saved", prefix=f"interrupted at step {self.step}; ") from None
            self.save("last")
            raise TrainingError(
                f"interrupted at step {self.step}; state saved in {self.out / 'last'} (run again with --resume)"
            ) from None
        except KeyboardInterrupt:
            raise TrainingError(
                f"interrupted twice at step {self.step}; the last checkpoint in {self.out / 'last'} is untouched"
            ) from None
        finally:
            self.events.close()
            if bar is not None:
                bar.close()
            for sig, old in handlers:
                signal.signal(sig, old)

    def _stop_if_asked(self) -> None:
        stop = self._stop_signal is not None
        if self.dist.enabled:  # every rank stops at the same step
            stop = all_sum([float(stop)], self.dist)[0] > 0
        if stop:
            raise _CleanStop

    def _train_step(self, group: list, bar) -> None:
        """One optimizer step on a group of batches (gradient accumulation), then logging
        and evaluation when due. A non-finite loss stops the run or skips the step."""
        cfg = self.cfg
        t0 = time.perf_counter()
        for g in self.opt.param_groups:
            g["lr"] = lr_at(cfg, self.step)
        mean_loss, total_tokens = self._forward_backward(group)
        if not math.isfinite(mean_loss):
            return self._skip_step(group, "loss", t0)
        norm = self._clip_gradients()
        if norm is not None and not math.isfinite(norm):
            return self._skip_step(group, "gradient norm", t0)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self._skipped = 0
        self.step += 1
        self.position += len(group)
        self.tokens_seen += total_tokens
        self.train_seconds += time.perf_counter() - t0
        self._window_tokens += total_tokens
        self._window_losses.append(mean_loss)
        if bar is not None:
            bar.update(1)
        if self.step % cfg.log_every == 0:
            self._log_window(bar)
        if self.step % cfg.eval_every == 0:
            self._save_evaluated(self.evaluate())
            self._window_start = time.perf_counter()

    def _clip_gradients(self) -> float | None:
        """Clip to ``grad_clip``; returns the norm before clipping (None without clipping)."""
        if self.cfg.grad_clip is None:
            return None
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if hasattr(norm, "full_tensor"):  # FSDP: a DTensor
            norm = norm.full_tensor()
        return float(norm)

    def _skip_step(self, group: list, what: str, t0: float) -> None:
        """A non-finite loss or gradient norm: stop (``nonfinite=stop``) or drop the update.
        A skipped step consumes its batches and its time; weights that already broke, or
        ``max_skipped_steps`` skips in a row, end the run (skipping would never recover)."""
        cfg = self.cfg
        self.opt.zero_grad(set_to_none=True)
        if cfg.nonfinite == "stop":
            raise TrainingError(f"non-finite {what} at step {self.step}; {self._last_good()}")
        if self._nonfinite_weights():
            raise self._broken_error("skipping steps cannot recover")
        self.position += len(group)
        self.train_seconds += time.perf_counter() - t0
        self._skipped += 1
        if self._skipped >= cfg.max_skipped_steps:
            raise TrainingError(
                f"{self._skipped} steps in a row had a non-finite {what} (max_skipped_steps={cfg.max_skipped_steps}) "
                f"after step {self.step}; {self._last_good()}"
            )

    def _forward_backward(self, group: list) -> tuple[float, int]:
        """Gradients of the whole group's mean loss; returns that loss and its token count
        (summed over ranks)."""
        cfg = self.cfg
        kind = self.device.type
        autocast = (lambda: torch.autocast(kind, dtype=torch.bfloat16)) if cfg.bf16 else nullcontext
        items = [to_device(shard(self.task.make_batch(item), self.dist), self.device) for item in group]
        counts = [self.task.count_tokens(b) for b in items]
        denom = max(all_sum([float(sum(counts))], self.dist)[0], 1)
        loss_sum, total_tokens = 0.0, 0
        for batch in items:
            with autocast(), self.depth.context(self.step):
                loss, n = self.task.loss(self.net, batch, cfg.label_smoothing)
            # DDP averages gradients over ranks; weighting by world * n / (global count)
            # makes the update the one a single process computes on the whole batch.
            (loss * (n * self.dist.world / denom)).backward()
            loss_sum += loss.item() * n
            total_tokens += n
        loss_sum, total_tokens = all_sum([loss_sum, float(total_tokens)], self.dist)
        return loss_sum / denom, int(total_tokens)

    def _reset_window(self) -> None:
        """Tokens, start time and losses since the last log line."""
        self._window_tokens, self._window_start, self._window_losses = 0, time.perf_counter(), []

    def _log_window(self, bar) -> None:
        tps = self._window_tokens / max(time.perf_counter() - self._window_start, 1e-9)
        losses = self._window_losses
        rec = {"step": self.step, "kind": "train", "loss": sum(losses) / len(losses),
               "lr": lr_at(self.cfg, self.step - 1), "tokens_per_s": tps,
               "train_seconds": self.train_seconds, "tokens_seen": self.tokens_seen, "epoch": self.epoch}
        if self.depth.sampler.varies:  # the loop counts drawn for the window's steps (a function of the step)
            counts = [self.depth.loops(s) for s in range(self.step - len(losses), self.step)]
            rec["mean_loops"] = sum(counts) / len(counts)
        self._log(rec)
        if bar is not None:
            bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{tps:,.0f}", lr=f"{rec['lr']:.2e}")
        self._reset_window()

    def _install_signal_handlers(self):
        """Ctrl-C or SIGTERM: finish the current step, save ``last``, stop cleanly.
        A second Ctrl-C stops at once without writing (the saved checkpoint stays intact)."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return []

        def handler(signum, frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_signal = signum

        return [(sig, signal.signal(sig, handler)) for sig in (signal.SIGINT, signal.SIGTERM)]


def keep_snapshot(last: Path, target: Path, keep: int) -> None:
    """Keep a resumable copy of ``last`` (hard links: saved files are never modified, only
    replaced) and delete the oldest snapshots beyond ``keep``."""
    import os
    import shutil

    if not target.exists():
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            shutil.copytree(last, tmp, copy_function=os.link)
        except OSError:  # file systems without hard links
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(last, tmp)
        tmp.rename(target)
    snapshots = sorted(p for p in target.parent.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))
    for old in snapshots[: max(len(snapshots) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def _progress(cfg: TrainConfig, start: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm

    total = cfg.max_steps if cfg.max_minutes is None else None  # a time budget has no known step count
    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True, mininterval=1.0)
