"""Distillation: a run's policy learns to act like a controller that is not learned.

The teacher is one of the HVAC envs' controllers (:mod:`smoothrl.envs.hvac.control`): the
economic MPC, which plans a day ahead with a convex program at every step, or a tuned rule
baseline. The student is the run's own SB3 policy, so everything downstream (RL fine-tuning,
``eval``, ``export``, ``deploy``) sees an ordinary run: a policy that acts like the MPC at a
fraction of a millisecond per decision.

Decisions are gathered in DAgger rounds (Ross, Gordon and Bagnell, *A Reduction of Imitation
Learning and Structured Prediction to No-Regret Online Learning*, AISTATS 2011): in round 0
the teacher drives; in round ``i`` each building follows the teacher with probability
``beta**i`` at each step and the student otherwise, while the teacher labels every state the
buildings visit, so that the student learns what to do in the states its own mistakes lead to.
After each round the student is fitted to every decision gathered so far and its value
function to the discounted returns reached, in the reward units RL training will see, so that
fine-tuning starts from a critic that knows the policy it is given.

The cloning loss compares what the plant would run. On a staged plant it is the cross-entropy
of the teacher's stage. On a modulating plant it is the squared error between the running
fractions of the student's and the teacher's signals, where a signal below the plant's lowest
running fraction runs nothing: exactly for the teacher, smoothed over :data:`DEAD_BAND_WIDTH` for
the student so that the loss has a gradient (a student matching a teacher at the lowest fraction
so learns to ask for a little more than it, and never for a signal the plant would not run).
A plain squared error on the signal would average a teacher that is off in some states and at
its lowest fraction in similar ones into a signal in between, which the plant does not run: on
``smoothrl/HVAC-v0`` such a student, distilled from the oracle MPC in three rounds of 16,384
decisions (seed 0), returned -12.8 on the 13 test weeks (-7.6 with its signals rounded to the
nearest level the plant runs); with both sides smoothed, -9.7 (a teacher at the lowest fraction
then counts as half on, and so does a student just below it); with this loss, -8.05, before any
RL fine-tuning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecNormalize, unwrap_vec_normalize
from torch.nn import functional as F

from smoothrl.envs import HVAC_FAMILY, make_vec_env
from smoothrl.envs.registration import has_controllers
from smoothrl.errors import SmoothRLError
from smoothrl.run.config import Pretrain, RunConfig

#: width (in signal units) of the sigmoid that smooths the plant's "off below its lowest fraction"
DEAD_BAND_WIDTH = 0.05
#: discounted returns are fitted only where the episode goes on long enough that the unseen
#: rest weighs less than this share (the truncated tail's targets would be biased)
RETURN_TAIL = 0.05


class FrozenStats(RunningMeanStd):
    """
    Observation statistics that training does not update (``pretrain.keep_normalization``):
    ``VecNormalize`` normalizes with them and calls :meth:`update` on every step, which keeps them
    as they are. They pickle with the run's ``vecnormalize.pkl``, so a resumed run keeps them too.
    """

    @classmethod
    def of(cls, stats: RunningMeanStd) -> FrozenStats:
        """:return: frozen statistics equal to ``stats``"""
        frozen = cls(shape=stats.mean.shape)
        frozen.mean, frozen.var, frozen.count = stats.mean.copy(), stats.var.copy(), stats.count
        return frozen

    def update(self, arr: np.ndarray) -> None:
        """Keep the statistics as they are."""


@dataclass
class Decisions:
    """
    What a round gathered: for each step of each building, the raw observation, the
    teacher's action, the reward and whether an episode ended after it.

    :param obs: ``(steps, buildings, obs_dim)`` raw observations
    :param actions: ``(steps, buildings, ...)`` the teacher's actions at those observations
    :param rewards: ``(steps, buildings)`` rewards of the actions taken (teacher's or student's)
    :param dones: ``(steps, buildings)`` an episode ended after the step
    :param returns: episode returns finished during the round
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    returns: list[float] = field(default_factory=list)


def gather(
    teacher: Any,
    env: VecEnv,
    steps: int,
    student: Callable[[np.ndarray], np.ndarray] | None = None,
    teacher_share: float = 1.0,
    rng: np.random.Generator | None = None,
    tick: Callable[[int], None] | None = None,
) -> Decisions:
    """
    Run the env's buildings for ``steps`` decisions each, the teacher labelling every state.

    :param teacher: a controller with SB3's ``predict(obs, state, episode_start, deterministic)``;
        it is asked at every step (the MPC keeps its plans and estimators across steps)
    :param env: the raw (unnormalized) vectorized env the teacher controls
    :param steps: steps per building
    :param student: maps raw observations to the student's actions (``None``: the teacher drives)
    :param teacher_share: probability that a building follows the teacher at a step
    :param rng: draws who drives
    :param tick: called with the number of decisions after each step (a progress bar)
    :return: the decisions
    """
    rng = rng or np.random.default_rng(0)
    n = env.num_envs
    obs = env.reset()
    starts = np.ones(n, dtype=bool)
    all_obs, all_actions, all_rewards, all_dones, returns = [], [], [], [], []
    for _ in range(steps):
        labels, _ = teacher.predict(obs, episode_start=starts, deterministic=True)
        labels = np.asarray(labels)
        taken = labels.copy()
        if student is not None and teacher_share < 1.0:
            own = rng.random(n) >= teacher_share
            if own.any():
                taken[own] = np.asarray(student(obs))[own]
        all_obs.append(np.asarray(obs, dtype=np.float32).copy())
        all_actions.append(labels)
        obs, rewards, dones, infos = env.step(taken)
        all_rewards.append(np.asarray(rewards, dtype=np.float64))
        all_dones.append(np.asarray(dones, dtype=bool))
        returns += [float(info["episode"]["r"]) for info in infos if "episode" in info]
        starts = np.asarray(dones, dtype=bool)
        if tick is not None:
            tick(n)
    return Decisions(np.stack(all_obs), np.stack(all_actions), np.stack(all_rewards), np.stack(all_dones), returns)


def reward_scale(rewards: np.ndarray, dones: np.ndarray, gamma: float, epsilon: float = 1e-8) -> float:
    """
    The factor ``VecNormalize`` divides rewards by, estimated on gathered rewards the way it
    estimates it while training (the standard deviation of the running discounted return).

    :param rewards: ``(steps, buildings)``
    :param dones: ``(steps, buildings)``
    :param gamma: the discount
    :param epsilon: ``VecNormalize``'s epsilon
    :return: ``sqrt(var + epsilon)``
    """
    rms = RunningMeanStd(shape=())
    running = np.zeros(rewards.shape[1])
    for t in range(len(rewards)):
        running = running * gamma + rewards[t]
        rms.update(running)
        running[dones[t]] = 0.0
    return float(np.sqrt(rms.var + epsilon))


def discounted_returns(rewards: np.ndarray, dones: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """
    Discounted return from each step to its episode's end (or the end of what was gathered),
    and where it stands for the value: the steps that have, in their episode, at least the
    horizon after which the unseen rest weighs less than :data:`RETURN_TAIL` (HVAC episodes end
    by truncation, which RL training bootstraps, so a return cut short by the episode's end is
    not the value either).

    :param rewards: ``(steps, buildings)``
    :param dones: ``(steps, buildings)``
    :param gamma: the discount
    :return: the returns and the mask of those that stand for the value, both ``(steps, buildings)``
    """
    horizon = math.inf if gamma >= 1 else math.log(RETURN_TAIL) / math.log(max(gamma, 1e-12))
    out = np.zeros(rewards.shape, dtype=np.float64)
    ahead = np.zeros(rewards.shape, dtype=np.float64)  # steps from t to the episode's last gathered step
    running = np.zeros(rewards.shape[1])
    remaining = np.zeros(rewards.shape[1])
    for t in reversed(range(len(rewards))):
        running = np.where(dones[t], 0.0, running) * gamma + rewards[t]
        remaining = np.where(dones[t], 0.0, remaining) + 1
        out[t], ahead[t] = running, remaining
    return out, ahead >= horizon


def running(signal: th.Tensor, lowest: float, width: float = DEAD_BAND_WIDTH) -> th.Tensor:
    """
    The signal a modulating plant runs, smoothed: ``signal`` where ``|signal|`` is above the
    lowest running fraction, 0 below it, a sigmoid of width ``width`` between.

    :param signal: heat pump signals in [-1, 1]
    :param lowest: the lowest running fraction (0: the plant runs any signal)
    :param width: the sigmoid's width
    :return: the smoothed running signal
    """
    if lowest <= 0:
        return signal
    return signal * th.sigmoid((signal.abs() - lowest) / width)


class Student:
    """
    The run's policy as DAgger's student: acts on raw observations (normalized as training
    will normalize them) and is fitted to the teacher's decisions.

    :param model: an on-policy actor-critic (PPO, A2C, S-PPO)
    :param normalize: the training env's ``VecNormalize`` (``None``: observations are not normalized)
    :param lowest: the plant's lowest running fraction (modulating plants; see :func:`running`)
    """

    def __init__(self, model: OnPolicyAlgorithm, normalize: VecNormalize | None, lowest: float = 0.0) -> None:
        self.model, self.policy, self.normalize = model, model.policy, normalize
        self.discrete = isinstance(model.action_space, spaces.Discrete)
        self.lowest = lowest

    def observe(self, raw: np.ndarray) -> np.ndarray:
        """:return: what the policy sees for raw observations"""
        return raw if self.normalize is None else self.normalize.normalize_obs(raw)

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        actions, _ = self.policy.predict(self.observe(raw), deterministic=True)
        return actions

    def fit(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        values: np.ndarray | None,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        rng: np.random.Generator,
    ) -> float:
        """
        Fit the policy's deterministic action to the teacher's, and its value function to the
        returns reached.

        :param obs: ``(n, obs_dim)`` raw observations
        :param actions: ``(n, ...)`` the teacher's actions
        :param values: ``(n,)`` value targets in training's reward units, NaN where unknown (or ``None``)
        :param epochs: passes over the data
        :param batch_size: decisions per gradient step
        :param learning_rate: Adam's step size
        :param rng: shuffles the data
        :return: the cloning loss of the last epoch
        """
        policy, device = self.policy, self.policy.device
        x = th.as_tensor(self.observe(obs), dtype=th.float32, device=device)
        if self.discrete:
            y = th.as_tensor(actions.reshape(-1), dtype=th.long, device=device)
        else:
            y = th.as_tensor(actions.reshape(len(actions), -1), dtype=th.float32, device=device)
            # what the plant runs for the teacher's signals (exactly: no smoothing)
            target = th.where(y.abs() >= self.lowest, y, th.zeros_like(y)) if self.lowest > 0 else y
        v = None if values is None else th.as_tensor(values, dtype=th.float32, device=device)
        optimizer = th.optim.Adam(policy.parameters(), lr=learning_rate)
        policy.set_training_mode(True)
        last = math.nan
        for _ in range(epochs):
            order = th.as_tensor(rng.permutation(len(x)), device=device)
            total, count = 0.0, 0
            for start in range(0, len(x), batch_size):
                idx = order[start : start + batch_size]
                dist = policy.get_distribution(x[idx])
                if self.discrete:
                    loss = -dist.log_prob(y[idx]).mean()
                else:
                    runs = running(dist.mode().reshape(len(idx), -1), self.lowest)
                    loss = F.mse_loss(runs, target[idx])
                clone = loss.item()
                if v is not None:
                    known = ~th.isnan(v[idx])
                    if known.any():
                        predicted = policy.predict_values(x[idx][known]).flatten()
                        loss = loss + F.mse_loss(predicted, v[idx][known])
                optimizer.zero_grad()
                loss.backward()
                th.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
                optimizer.step()
                total, count = total + clone * len(idx), count + len(idx)
            last = total / max(count, 1)
        policy.set_training_mode(False)
        return last


def teacher_env(config: RunConfig, settings: Pretrain) -> tuple[VecEnv, Any]:
    """
    The raw env the teacher drives (the run's env on its training days) and the teacher.

    :param config: the run config
    :param settings: the distillation settings
    :return: the env and the teacher
    :raises SmoothRLError: when the env has no such controller
    """
    from smoothrl.envs.eplus import EPLUS_IDS
    from smoothrl.envs.hvac.control import believed_model, make_controller

    if not has_controllers(config.env):
        raise SmoothRLError(
            f"pretrain needs an HVAC env, whose controllers teach ({', '.join(HVAC_FAMILY)}); {config.env} has none"
        )
    if config.env in EPLUS_IDS and settings.teacher == "mpc-oracle":
        raise SmoothRLError(
            "the oracle MPC needs the RC simulator's full state, which EnergyPlus does not expose; "
            "use pretrain.teacher=mpc-realistic on EnergyPlus"
        )
    env = make_vec_env(
        config.env, settings.buildings, config.seed, {**config.env_kwargs, "split": "train"}, config.smoothness_reward
    )
    sims = env.get_attr("sim")
    params = dict(settings.teacher_params)
    if config.env in EPLUS_IDS and settings.teacher == "mpc-realistic" and "model_preset" not in params:
        params["model_preset"] = believed_model(sims[0])
    try:
        if sims[0].batch == env.num_envs:  # one simulator runs every building (the RC envs)
            return env, make_controller(settings.teacher, sims[0], params, seed=config.seed)
        # one simulator per building (EnergyPlus): one teacher each
        return env, PerBuilding([make_controller(settings.teacher, sim, params, seed=config.seed) for sim in sims])
    except SmoothRLError:
        env.close()
        raise


class PerBuilding:
    """
    Teachers of one building each, asked as one: where every building of a vectorized env has a
    simulator of its own (EnergyPlus), each controller sees its own building's observations.

    :param teachers: one controller per building, in the env's order
    """

    def __init__(self, teachers: list[Any]) -> None:
        self.teachers = teachers

    def predict(
        self, obs: np.ndarray, state: Any = None, episode_start: np.ndarray | None = None, deterministic: bool = True
    ) -> tuple[np.ndarray, None]:
        """
        :param obs: ``(buildings, obs_dim)`` unnormalized observations
        :param state: unused (SB3's signature)
        :param episode_start: which buildings start an episode
        :param deterministic: passed on
        :return: the teachers' actions, stacked, and ``None``
        """
        starts = np.zeros(len(obs), dtype=bool) if episode_start is None else np.asarray(episode_start, dtype=bool)
        actions = [
            teacher.predict(obs[i : i + 1], episode_start=starts[i : i + 1], deterministic=deterministic)[0]
            for i, teacher in enumerate(self.teachers)
        ]
        return np.concatenate([np.asarray(a) for a in actions]), None


def distill(
    model: OnPolicyAlgorithm,
    env: VecEnv,
    config: RunConfig,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """
    Distil the run's teacher into its policy (see the module). The training env's
    normalization statistics are set to those of the gathered observations, so that RL
    training continues from what the policy was fitted on.

    :param model: the run's new model (on-policy actor-critic)
    :param env: the run's training env (``VecNormalize`` or not)
    :param config: the run config, with ``pretrain`` set
    :param progress: called with (decisions gathered, decisions to gather) after each step
    :return: one record per round: ``round``, ``teacher_share``, ``decisions``, ``loss`` and the
        mean ``episode_return`` of the episodes finished during the round (``nan`` when none)
    :raises SmoothRLError: when the env has no teacher or the algorithm cannot be a student
    """
    settings = config.pretrain
    if settings is None:
        raise SmoothRLError("the config has no pretrain section; set pretrain.teacher")
    if not isinstance(model, OnPolicyAlgorithm):
        raise SmoothRLError(f"pretrain distils into an on-policy actor-critic (ppo, a2c, sppo), not {config.algo}")
    normalize = unwrap_vec_normalize(env)
    gamma = float(getattr(model, "gamma", 0.99))
    rng = np.random.default_rng(config.seed)
    source, teacher = teacher_env(config, settings)
    sim = source.get_attr("sim")[0]
    student = Student(model, normalize, 0.0 if sim.discrete else float(sim.plant.min_fraction))
    per_building = max(1, math.ceil(settings.steps / settings.buildings))
    total = per_building * settings.buildings * settings.rounds
    rounds: list[Decisions] = []
    records: list[dict[str, Any]] = []
    try:
        for i in range(settings.rounds):
            share = 1.0 if i == 0 else settings.beta**i
            source.seed(config.seed + 7919 * i)
            done = per_building * settings.buildings * i
            tick = None if progress is None else _ticker(progress, done, total)
            round_ = gather(teacher, source, per_building, student if i else None, share, rng, tick)
            rounds.append(round_)
            obs = np.concatenate([r.obs.reshape(-1, r.obs.shape[-1]) for r in rounds])
            actions = np.concatenate(
                [r.actions.reshape(len(r.obs) * r.obs.shape[1], *r.actions.shape[2:]) for r in rounds]
            )
            if normalize is not None:
                rms = RunningMeanStd(shape=normalize.obs_rms.mean.shape)
                rms.update(obs.astype(np.float64))
                normalize.obs_rms = rms
            values = _value_targets(rounds, gamma, normalize)
            loss = student.fit(obs, actions, values, settings.epochs, settings.batch_size, settings.learning_rate, rng)
            records.append(
                {
                    "round": i,
                    "teacher_share": share,
                    "decisions": int(round_.obs.shape[0] * round_.obs.shape[1]),
                    "loss": loss,
                    "episode_return": float(np.mean(round_.returns)) if round_.returns else math.nan,
                    "episodes": len(round_.returns),
                }
            )
    finally:
        source.close()
    return records


def _ticker(progress: Callable[[int, int], None], done: int, total: int) -> Callable[[int], None]:
    count = [done]

    def tick(n: int) -> None:
        count[0] += n
        progress(count[0], total)

    return tick


def _value_targets(rounds: list[Decisions], gamma: float, normalize: VecNormalize | None) -> np.ndarray:
    """Discounted returns of every gathered step in training's reward units (NaN where cut short)."""
    scale, clip = 1.0, math.inf
    if normalize is not None and normalize.norm_reward:
        rewards = np.concatenate([r.rewards for r in rounds], axis=1)
        dones = np.concatenate([r.dones for r in rounds], axis=1)
        scale, clip = reward_scale(rewards, dones, gamma, normalize.epsilon), normalize.clip_reward
    out = []
    for r in rounds:
        returns, trusted = discounted_returns(np.clip(r.rewards / scale, -clip, clip), r.dones, gamma)
        out.append(np.where(trusted, returns, np.nan).reshape(-1))
    return np.concatenate(out)
