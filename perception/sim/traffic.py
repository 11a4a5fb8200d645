"""Actors and their motion: lane-following vehicles (IDM car-following, lane changes), parked cars, walking and
crossing pedestrians, cyclists and static cones, simulated in road coordinates on a fine time grid.

Agent 0 is the ego vehicle. ``Traffic.state(t)`` interpolates every agent's world pose (x, y, yaw) and velocity
(vx, vy) at any time ``t`` inside the simulated window, so renderers and labels agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from perception.labels import DRIVING_CLASSES
from perception.sim.meshes import sample_size
from perception.sim.road import Lane, Road

SIM_DT = 0.02  # seconds between simulated states
EGO_SIZE = np.array([4.6, 1.9, 1.6])
EGO_REAR_AXLE_TO_CENTRE = 1.35  # metres: box centre ahead of the ego origin (rear axle)

_CATEGORY_WEIGHTS = {
    "moving_car": 0.36,
    "parked_car": 0.12,
    "truck": 0.07,
    "bus": 0.04,
    "walker": 0.18,
    "crosser": 0.05,
    "cyclist": 0.06,
    "cones": 0.04,
}


@dataclass
class Agent:
    """One simulated agent; ``idm`` agents have their ``s`` integrated, the others follow ``s_script``."""

    class_name: str
    size: np.ndarray  # (3,) l, w, h metres
    direction: int  # +1 moves towards +s, -1 towards -s
    idm: bool
    s_init: float
    v_init: float  # m/s along the road
    v_desired: float
    d_profile: np.ndarray  # (T,) lateral offset over the time grid
    s_script: np.ndarray | None = None  # (T,) for scripted agents
    rest_yaw: float = 0.0  # heading relative to the road when not moving (rad)


@dataclass
class Traffic:
    """Simulated world poses of the ego (row 0) and all actors over ``times``."""

    times: np.ndarray  # (T,)
    s: np.ndarray  # (A, T) road coordinate of each agent
    x: np.ndarray  # (A, T) agent centre (ego: box centre as well)
    y: np.ndarray
    yaw: np.ndarray  # unwrapped over time
    vx: np.ndarray
    vy: np.ndarray
    class_names: list[str]  # per actor (ego excluded)
    sizes: np.ndarray  # (A-1, 3)

    def state(self, t: float) -> tuple[np.ndarray, ...]:
        """(x, y, yaw, vx, vy) of all agents at time ``t`` (s): each (A,), linear interpolation."""
        k = float(np.clip((t - self.times[0]) / SIM_DT, 0, len(self.times) - 1.000001))
        i = int(k)
        a = k - i
        return tuple((1 - a) * arr[:, i] + a * arr[:, i + 1] for arr in (self.x, self.y, self.yaw, self.vx, self.vy))

    def ego_s(self, t: float) -> float:
        """Road coordinate ``s`` (m) of the ego at time ``t``."""
        return float(np.interp(t, self.times, self.s[0]))

    def world_from_ego(self, t: float) -> np.ndarray:
        """World pose (4x4) of the ego frame (rear axle on the ground) at time ``t``."""
        x, y, yaw, _, _ = self.state(t)
        c, s = np.cos(yaw[0]), np.sin(yaw[0])
        pose = np.eye(4)
        pose[:2, :2] = [[c, -s], [s, c]]
        pose[:2, 3] = [x[0] - c * EGO_REAR_AXLE_TO_CENTRE, y[0] - s * EGO_REAR_AXLE_TO_CENTRE]
        return pose

    @property
    def class_ids(self) -> np.ndarray:
        return np.array([DRIVING_CLASSES.index(c) for c in self.class_names], dtype=np.int64)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _idm_accel(v: np.ndarray, v0: np.ndarray, gap: np.ndarray, dv: np.ndarray) -> np.ndarray:
    a_max, b_comf, headway, jam = 1.4, 2.0, 1.3, 2.5
    s_star = jam + np.maximum(0.0, v * headway + v * dv / (2 * np.sqrt(a_max * b_comf)))
    return a_max * (1 - (v / np.maximum(v0, 0.1)) ** 4 - (s_star / np.maximum(gap, 0.2)) ** 2)


def _free(positions: list[tuple[float, float, float]], s: float, d: float, length: float, margin: float) -> bool:
    """True when (s, d) keeps ``margin`` metres (along s) from every occupied slot in the same lateral band."""
    return all(abs(s - s2) > (length + l2) / 2 + margin or abs(d - d2) > 1.6 for s2, d2, l2 in positions)


def sample_agents(
    rng: np.random.Generator, road: Road, times: np.ndarray, *, num_actors: tuple[int, int] = (5, 20)
) -> list[Agent]:
    """Ego plus 5-20 actors placed mostly within ~30 m of the ego, with plausible motion."""
    n_times = len(times)
    duration = float(times[-1])
    forward = road.lanes_in_direction(+1)
    backward = road.lanes_in_direction(-1)
    ego_lane = forward[int(rng.integers(len(forward)))]
    ego_speed = float(rng.uniform(4.0, 13.0))
    agents = [Agent("car", EGO_SIZE, +1, True, 0.0, ego_speed, ego_speed, np.full(n_times, ego_lane.d))]
    agents[0].v_desired = ego_speed * float(rng.uniform(0.8, 1.3))
    occupied: list[tuple[float, float, float]] = [(0.0, ego_lane.d, EGO_SIZE[0])]

    # 5-20 actors for clips up to 10 s; longer clips get proportionally more, spread along the ego's path
    target = int(rng.integers(num_actors[0], num_actors[1] + 1) * max(1.0, duration / 10.0))
    categories = list(_CATEGORY_WEIGHTS)
    weights = np.array(list(_CATEGORY_WEIGHTS.values()))
    attempts = 0
    actors: list[Agent] = []
    while len(actors) < target and attempts < 200:
        attempts += 1
        category = str(rng.choice(categories, p=weights / weights.sum()))
        actors += _sample_category(
            rng,
            category,
            road,
            times,
            ego_speed,
            forward,
            backward,
            occupied,
            max_new=target - len(actors),
            duration=duration,
        )
    return agents + actors


def _sample_category(
    rng: np.random.Generator,
    category: str,
    road: Road,
    times: np.ndarray,
    ego_speed: float,
    forward: list[Lane],
    backward: list[Lane],
    occupied: list[tuple[float, float, float]],
    *,
    max_new: int,
    duration: float,
) -> list[Agent]:
    """Agents of one category (a cone group may add several), placed relative to the ego at s = 0."""
    n_times = len(times)
    out: list[Agent] = []
    anchor = float(rng.uniform(0.0, max(duration - 2.0, 0.0)))  # when the ego meets this actor (roughly)
    ahead = ego_speed * anchor  # metres the ego has driven by then
    if category in ("moving_car", "truck", "bus"):
        class_name = {"moving_car": "car", "truck": "truck", "bus": "bus"}[category]
        size = sample_size(rng, class_name)
        oncoming = bool(backward) and rng.random() < 0.35
        lanes = backward if oncoming else forward
        lane = lanes[int(rng.integers(len(lanes)))]
        direction = lane.direction
        s = (
            float(rng.uniform(15.0, 90.0)) + anchor * (ego_speed + 10.0)
            if oncoming
            else float(rng.uniform(-25.0, 45.0))
        )
        if not _free(occupied, s, lane.d, size[0], 6.0):
            return out
        speed_scale = {"car": 1.0, "truck": 0.85, "bus": 0.8}[class_name]
        v_desired = (
            float(rng.uniform(6.0, 14.0)) * speed_scale
            if oncoming
            else ego_speed * float(rng.uniform(0.7, 1.3)) * speed_scale
        )
        d_profile = np.full(n_times, lane.d)
        same_dir = [ln for ln in lanes if abs(abs(ln.d - lane.d) - ln.width) < 0.1]
        if same_dir and class_name == "car" and rng.random() < 0.3:  # lane change somewhere in the clip
            other = same_dir[int(rng.integers(len(same_dir)))]
            start, length = float(rng.uniform(0.0, max(duration - 1.0, 0.5))), float(rng.uniform(2.5, 4.0))
            d_profile = lane.d + (other.d - lane.d) * _smoothstep((times - start) / length)
        occupied.append((s, lane.d, size[0]))
        out.append(
            Agent(class_name, size, direction, True, s, v_desired * float(rng.uniform(0.9, 1.1)), v_desired, d_profile)
        )
    elif category == "parked_car":
        sides = [(road.right_edge, road.right_shoulder, +1)] if road.right_shoulder else []
        if road.left_shoulder:
            sides.append((road.left_edge, road.left_shoulder, -1))
        if not sides:
            return out
        edge, _, sign = sides[int(rng.integers(len(sides)))]
        size = sample_size(rng, "car")
        d = edge + sign * (size[1] / 2 + float(rng.uniform(0.15, 0.4)))
        s = ahead + float(rng.uniform(-20.0, 50.0))
        if not _free(occupied, s, d, size[0], 1.0):
            return out
        occupied.append((s, d, size[0]))
        yaw = 0.0 if (sign > 0 or rng.random() < 0.3) else np.pi
        out.append(Agent("car", size, +1, False, s, 0.0, 0.0, np.full(n_times, d), np.full(n_times, s), rest_yaw=yaw))
    elif category == "walker":
        side = road.sidewalk_right if rng.random() < 0.55 else road.sidewalk_left
        size = sample_size(rng, "pedestrian")
        d = float(rng.uniform(min(side), max(side)))
        s = ahead + float(rng.uniform(-20.0, 40.0))
        direction = 1 if rng.random() < 0.5 else -1
        speed = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.8, 1.7))
        s_script = s + direction * speed * times
        wobble = 0.15 * np.sin(times * float(rng.uniform(0.5, 1.5)) + float(rng.uniform(0, 6.3)))
        rest = float(rng.uniform(-np.pi, np.pi)) if speed == 0 else (0.0 if direction > 0 else np.pi)
        out.append(
            Agent(
                "pedestrian",
                size,
                direction,
                False,
                s,
                speed,
                speed,
                np.clip(d + wobble, min(side), max(side)),
                s_script,
                rest_yaw=rest,
            )
        )
    elif category == "crosser":
        size = sample_size(rng, "pedestrian")
        start = float(rng.uniform(-1.0, max(duration - 2.0, 0.0)))
        s = ego_speed * max(start, 0.0) + float(rng.uniform(12.0, 35.0))
        a, b = (road.sidewalk_right[0] - 0.5, road.sidewalk_left[0] + 0.5)
        if rng.random() < 0.5:
            a, b = b, a
        speed = float(rng.uniform(1.0, 1.8))
        crossed = np.clip((times - start) * speed, 0.0, abs(b - a))
        d_profile = a + np.sign(b - a) * crossed
        rest = np.pi / 2 if b > a else -np.pi / 2
        out.append(Agent("pedestrian", size, 1, False, s, 0.0, 0.0, d_profile, np.full(n_times, s), rest_yaw=rest))
    elif category == "cyclist":
        size = sample_size(rng, "cyclist")
        lane = forward[0]  # right-most forward lane
        d = (road.right_edge + road.right_shoulder / 2) if road.right_shoulder else lane.d - lane.width / 2 + 0.8
        s = ahead + float(rng.uniform(-10.0, 40.0))
        if not _free(occupied, s, d, size[0], 3.0):
            return out
        occupied.append((s, d, size[0]))
        v = float(rng.uniform(3.0, 6.5))
        out.append(Agent("cyclist", size, +1, True, s, v, v, np.full(n_times, d)))
    elif category == "cones":
        count = min(int(rng.integers(2, 5)), max_new)
        if road.right_shoulder:
            d = road.right_edge + float(rng.uniform(0.4, road.right_shoulder - 0.3))
        else:
            d = road.right_edge + 0.4
        s0 = ahead + float(rng.uniform(0.0, 45.0))
        spacing = float(rng.uniform(2.0, 4.0))
        for k in range(count):
            size = sample_size(rng, "traffic_cone")
            s = s0 + k * spacing
            if not _free(occupied, s, d, 0.5, 0.3):
                continue
            occupied.append((s, d, 0.5))
            out.append(Agent("traffic_cone", size, 1, False, s, 0.0, 0.0, np.full(n_times, d), np.full(n_times, s)))
    return out[:max_new]


def simulate(road: Road, agents: list[Agent], times: np.ndarray, rng: np.random.Generator) -> Traffic:
    """Integrate IDM car-following for lane agents (leaders: anything overlapping laterally ahead) on ``times``."""
    n_agents, n_times = len(agents), len(times)
    d = np.stack([agent.d_profile for agent in agents])
    s = np.zeros((n_agents, n_times))
    v = np.zeros((n_agents, n_times))
    idm = np.array([agent.idm for agent in agents])
    direction = np.array([agent.direction for agent in agents], dtype=np.float64)
    length = np.array([agent.size[0] for agent in agents])
    width = np.array([agent.size[1] for agent in agents])
    desired = np.array([agent.v_desired for agent in agents])
    for i, agent in enumerate(agents):
        if agent.idm:
            s[i, 0], v[i, 0] = agent.s_init, agent.v_init
        else:
            s[i] = agent.s_script
    scripted_speed = np.gradient(s, times, axis=1)  # along-s speed of scripted agents
    # the ego's desired speed varies smoothly (traffic, curves): +-25 % with a random period
    period = float(rng.uniform(4.0, 12.0))
    ego_desired = desired[0] * (1 + 0.25 * np.sin(2 * np.pi * times / period + float(rng.uniform(0, 6.3))))
    lateral_limit = (width[:, None] + width[None, :]) / 2 + 0.3
    half_lengths = (length[:, None] + length[None, :]) / 2
    np.fill_diagonal(lateral_limit, -1.0)  # never your own leader
    for k in range(n_times - 1):
        along = np.where(idm, v[:, k] * direction, scripted_speed[:, k])  # ds/dt of everyone
        ahead = direction[:, None] * (s[None, :, k] - s[:, None, k])  # [i, j]: how far j is ahead of i
        overlapping = np.abs(d[None, :, k] - d[:, None, k]) < lateral_limit
        candidate = overlapping & (ahead > 0)
        gap = np.where(candidate, ahead - half_lengths, np.inf)
        leader = np.argmin(gap, axis=1)
        leader_gap = gap[np.arange(n_agents), leader]
        leader_speed = direction * along[leader]
        v0 = desired.copy()
        v0[0] = ego_desired[k]
        dv = np.where(np.isfinite(leader_gap), v[:, k] - leader_speed, 0.0)
        accel = _idm_accel(v[:, k], v0, np.where(np.isfinite(leader_gap), leader_gap, 1e6), dv)
        accel = np.clip(accel, -7.0, 2.5)
        v_next = np.maximum(0.0, v[:, k] + accel * SIM_DT)
        s_next = s[:, k] + direction * 0.5 * (v[:, k] + v_next) * SIM_DT
        v[idm, k + 1] = v_next[idm]
        s[idm, k + 1] = s_next[idm]
    x, y, road_heading = road.pose(s, d)
    vx = np.gradient(x, times, axis=1)
    vy = np.gradient(y, times, axis=1)
    speed = np.hypot(vx, vy)
    rest = np.array([agent.rest_yaw for agent in agents])[:, None] + road_heading
    moving_yaw = np.arctan2(vy, vx)
    vehicle_like = np.array([a.class_name in ("car", "truck", "bus", "cyclist") and a.idm for a in agents])
    # vehicles point along the road plus the lane-change slip; everything else faces where it walks
    slip = np.arctan2(
        np.gradient(d, times, axis=1), np.maximum(np.abs(np.gradient(s, times, axis=1)), 1.0) * direction[:, None]
    )
    vehicle_yaw = road_heading + slip
    yaw = np.where(vehicle_like[:, None], vehicle_yaw, np.where(speed > 0.3, moving_yaw, rest))
    yaw = np.unwrap(yaw, axis=1)
    return Traffic(
        times,
        s,
        x,
        y,
        yaw,
        vx,
        vy,
        [a.class_name for a in agents[1:]],
        np.stack([a.size for a in agents[1:]]) if len(agents) > 1 else np.zeros((0, 3)),
    )
