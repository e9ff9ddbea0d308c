"""The synthetic street scenes (Cityscapes ids): a street seen from a car, objects standing on
the ground plane, painted far to near."""
from __future__ import annotations

import numpy as np

from pipeline.data.scene_canvas import Canvas, jittered

# A street seen from a car, as in Cityscapes: a pinhole camera 1.2 m above a flat road
# (focal length 1.1 x the image width, Cityscapes' 2262 px at 2048), the horizon near the
# middle, a road between kerbs and pavements, facades (or trees) in perspective along both
# sides and across the far end, poles and signs on the kerbs, and objects standing on the
# ground plane: rows of parked cars along both kerbs, cars in the lanes (seen from the rear or
# the front), cars crossing far away (side view), pedestrians in several poses (some in
# groups), parked bicycles (wheels with holes), riders on bicycles and motorcycles, now and
# then a truck, a bus or a tram. Objects are painted far to near, so nearer ones occlude
# farther ones (an occluded object keeps only its visible pixels, as in Cityscapes); objects
# near the camera are cut by the image border. Sizes are metres; the geometry is scaled to
# the image, so any size works (the statistics are matched at the paper's 256x128:
# pipeline.evaluation.map_statistics, reports/datasets.md).

_CAMERA_HEIGHT = 1.22
# The nearest depth (m) of pedestrians and two-wheelers. In the real maps at 256x128 (video
# frames and gtFine, tight rule) every box passing the 0.02 size threshold is a car's; a thin
# object that near (bicycle fill 0.2, motorcycle 0.5, person 0.5) would pull the fill-box floor
# below the real one. From these depths on they pass 0.02 only now and then (a tall person
# with a bag, a group member): person <= ~14 m, rider ~14 m, bicycle ~15 m, motorcycle ~17 m
# (pipeline.evaluation.map_statistics, reports/datasets.md).
_NEAREST = {24: 14.5, 33: 16.5, 32: 18.0}
_FAR = 200.0
_STREET_COLOURS = {7: (90, 85, 92), 8: (165, 150, 158), 11: (120, 108, 100), 21: (70, 115, 45),
                   23: (150, 185, 230), 17: (125, 125, 125), 20: (220, 210, 40),
                   19: (60, 60, 60), 22: (120, 170, 90), 13: (150, 130, 120), 12: (140, 140, 150)}
_STREET_TEXTURE = {7: 5.0, 8: 6.0, 11: 10.0, 21: 14.0, 23: 3.0, 22: 10.0}
_VEHICLE_PAINT = [(30, 30, 120), (150, 20, 20), (200, 200, 205), (20, 20, 25), (90, 90, 100),
                  (40, 90, 60), (210, 180, 60)]


def _convex_hull(points):
    """The convex hull of (n, 2) points (Andrew's monotone chain), counter-clockwise."""
    points = np.unique(np.round(points, 4), axis=0)
    if len(points) < 3:
        return points
    def half(pts):
        chain = []
        for p in pts:
            while len(chain) >= 2 and ((chain[-1][0] - chain[-2][0]) * (p[1] - chain[-2][1])
                                       - (chain[-1][1] - chain[-2][1]) * (p[0] - chain[-2][0])
                                       ) <= 0:
                chain.pop()
            chain.append(p)
        return chain
    lower, upper = half(points), half(points[::-1])
    return np.array(lower[:-1] + upper[:-1])


def _circle_points(cx, cy, r, n=10, ry=None):
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + (r if ry is None else ry) * np.sin(t)], axis=1)


# Side profiles: (u along the vehicle 0 = rear .. 1 = front, v metres above the road), the
# body without wheels; wheels are added as discs (u, radius as a fraction of the height).
def _car_side(kind, length, height):
    h = height
    if kind == "sedan":
        body = [(0.0, 0.22), (0.0, 0.6 * h), (0.04, 0.66 * h), (0.24, 0.68 * h),
                (0.34, h), (0.62, h), (0.76, 0.68 * h), (0.97, 0.6 * h), (1.0, 0.45 * h),
                (1.0, 0.22)]
    elif kind == "hatch":
        body = [(0.0, 0.22), (0.0, 0.7 * h), (0.06, 0.95 * h), (0.14, h), (0.6, h),
                (0.74, 0.68 * h), (0.97, 0.6 * h), (1.0, 0.45 * h), (1.0, 0.22)]
    else:  # van / SUV: boxy
        body = [(0.0, 0.22), (0.0, 0.92 * h), (0.03, h), (0.78, h), (0.86, 0.7 * h),
                (0.99, 0.6 * h), (1.0, 0.22)]
    return np.array(body), [(0.17, 0.31), (0.82, 0.31)]


def _car_end(kind, height, width):
    """End face (rear or front): (b across the car -0.5..0.5 of its width, v metres)."""
    h = height
    top = 0.36 if kind != "van" else 0.46
    shoulder = 0.66 * h if kind != "van" else 0.8 * h
    return np.array([(-0.5, 0.18), (-0.5, shoulder - 0.05), (-0.47, shoulder), (-top, h),
                     (top, h), (0.47, shoulder), (0.5, shoulder - 0.05), (0.5, 0.18),
                     (0.3, 0.18), (0.3, 0.3), (-0.3, 0.3), (-0.3, 0.18)])


def _big_side(kind, height):
    if kind == 27:   # truck: cab in front, cargo box behind
        return np.array([(0.0, 0.45), (0.0, height), (0.72, height), (0.74, 0.8 * height),
                         (0.8, 0.8 * height), (0.95, 0.72 * height), (1.0, 0.55 * height),
                         (1.0, 0.45)]), [(0.15, 0.5), (0.3, 0.5), (0.85, 0.5)]
    return np.array([(0.0, 0.35), (0.0, 0.96 * height), (0.02, height), (0.98, height),
                     (1.0, 0.96 * height), (1.0, 0.35)]), [(0.15, 0.5), (0.82, 0.5)]


class _Street:
    """The camera and the canvas of one street scene: projection and object painting."""

    def __init__(self, canvas, rng):
        self.c, self.rng = canvas, rng
        height, width = canvas.labels.shape
        self.height, self.width = height, width
        self.f = 1.105 * width * rng.uniform(0.97, 1.03)
        self.cx = width / 2 + rng.normal(0, 0.02) * width
        self.horizon = height * rng.uniform(0.41, 0.48)
        self.cam = _CAMERA_HEIGHT * rng.uniform(0.96, 1.04)
        self.photo_colour = np.zeros((height, width, 3), dtype=np.float32)

    def project(self, x, v, z):
        """World (lateral x right, height v up, depth z) -> image (column, row), float."""
        z = np.maximum(np.asarray(z, dtype=np.float64), 0.05)
        return self.cx + self.f * np.asarray(x) / z, self.horizon + self.f * (self.cam - np.asarray(v)) / z

    def scale(self, z):
        return self.f / max(z, 0.05)

    def polygon_mask(self, polygons, holes=()):
        """(rows, cols) of the pixels inside any of the image polygons ((n, 2) arrays of
        column, row) and outside every hole polygon, clipped to the image."""
        from skimage.draw import polygon as draw_polygon
        shape = (self.height, self.width)
        every = np.concatenate(polygons)
        x1, x2 = int(max(0, np.floor(every[:, 0].min()))), int(min(self.width, np.ceil(every[:, 0].max()) + 1))
        y1, y2 = int(max(0, np.floor(every[:, 1].min()))), int(min(self.height, np.ceil(every[:, 1].max()) + 1))
        if x2 <= x1 or y2 <= y1:
            return None
        local = np.zeros((y2 - y1, x2 - x1), dtype=bool)
        for points, value in [(p, True) for p in polygons] + [(p, False) for p in holes]:
            rr, cc = draw_polygon(points[:, 1] - y1, points[:, 0] - x1, local.shape)
            local[rr, cc] = value
        del shape
        rr, cc = np.nonzero(local)
        return rr + y1, cc + x1

    def paint_object(self, label, colour, polygons, holes=()):
        """Paint one object instance (label*1000 + k) over what is there."""
        where = self.polygon_mask(polygons, holes)
        if where is None or len(where[0]) == 0:
            return
        c = self.c
        c.counts[label] = c.counts.get(label, 0) + 1
        c.labels[where] = label
        c.instances[where] = label * 1000 + c.counts[label]
        self.photo_colour[where] = colour

    # -- objects ---------------------------------------------------------------------------

    def thick_line(self, p, q, half):
        """A segment between image points p, q as a quadrilateral half `half` pixels wide."""
        d = np.asarray(q, dtype=np.float64) - np.asarray(p, dtype=np.float64)
        n = np.array([-d[1], d[0]]) / max(np.hypot(*d), 1e-6) * max(half, 0.5)
        return np.array([p + n, q + n, q - n, p - n])

    def vehicle(self, label, x, z, heading, kind, length, width, height):
        """A vehicle on the ground, centre x, nearest end at depth z; heading 'across'
        (crossing: a side view with round wheels) or a yaw in radians (0: along the street,
        pi: oncoming)."""
        colour = jittered(self.rng, _VEHICLE_PAINT[self.rng.integers(len(_VEHICLE_PAINT))], 25)
        if label == 26:
            side, wheels = _car_side(kind, length, height)
            end = _car_end(kind, height, width)
        else:
            side, wheels = _big_side(label, height)
            end = np.array([(-0.5, 0.3), (-0.5, height), (0.5, height), (0.5, 0.3)])
        polygons = []
        if heading == "across":   # side view in the plane z, front to the left or right
            sign = 1 if self.rng.random() < 0.5 else -1
            xs = x + sign * (side[:, 0] - 0.5) * length
            polygons.append(np.stack(self.project(xs, side[:, 1], z), axis=1))
            for u, r in wheels:
                circle = _circle_points(x + sign * (u - 0.5) * length, r, r)
                polygons.append(np.stack(self.project(circle[:, 0], circle[:, 1], z), axis=1))
            self.paint_object(label, colour, polygons)
            return
        # along the street (yaw: turned by that angle): the silhouette of the car's solid,
        # the body profile extruded across its width, the cabin inset, seen in perspective
        yaw = heading
        cos, sin = np.cos(yaw), np.sin(yaw)

        def solid(u, v, b):
            """Image hull of points (u along 0..1, v up, b across, metres) of the car."""
            along = (np.asarray(u) - 0.5) * length
            b = np.asarray(b, dtype=np.float64)
            xs = x + b * cos + along * sin
            zs = z + length / 2 + along * cos - b * sin
            return _convex_hull(np.stack(self.project(xs, v, zs), axis=1))

        shoulder = 0.7 * height if label == 26 else height + 1.0
        low = side[:, 1] <= shoulder
        # the body below the shoulder, and the wheels under it (the road shows between them)
        body_u, body_v = side[low, 0], np.maximum(side[low, 1], 0.06)
        body_u = np.concatenate([body_u, [body_u.min(), body_u.max()]])
        body_v = np.concatenate([body_v, [min(shoulder, height), min(shoulder, height)]])
        n = len(body_u)
        polygons.append(solid(np.tile(body_u, 2), np.tile(body_v, 2),
                              np.repeat([-width / 2, width / 2], n)))
        if label == 26:   # the cabin, narrower than the body
            inset = self.rng.uniform(0.7, 0.92) * width / 2
            top = side[~low]
            cu = np.concatenate([top[:, 0], [top[:, 0].min() - 0.08, top[:, 0].max() + 0.08]])
            cv = np.concatenate([top[:, 1], [shoulder, shoulder]])
            m = len(cu)
            polygons.append(solid(np.tile(cu, 2), np.tile(cv, 2), np.repeat([-inset, inset], m)))
        if self.scale(z) * 0.3 >= 1.0:   # wheels, where they are at least a pixel
            for wu, r in wheels:
                for wb in (-width / 2 + 0.12, width / 2 - 0.12):
                    du = r / length
                    polygons.append(solid([wu - du, wu + du, wu - du, wu + du] * 2,
                                          [0.0, 0.0, 2 * r, 2 * r] * 2,
                                          [wb - 0.1] * 4 + [wb + 0.1] * 4))
        self.paint_object(label, colour, polygons)

    def person(self, label, x, z, pose, height, seat=None):
        """A pedestrian (or a rider: label 25, seated at `seat` = (dx, v) relative metres)
        facing the camera or seen from the side, in the plane z."""
        rng = self.rng
        h = height
        side = pose in ("walk_side", "ride")
        shoulder = 0.13 if side else 0.21
        hip = 0.12 if side else 0.16
        head_v = h - 0.12
        polys = []
        def pt(b, v):
            return np.stack(self.project(x + np.asarray(b), np.asarray(v), z), axis=-1)
        hc = _circle_points(0.0, head_v, 0.09, 8, ry=0.12)
        lean = 0.0
        if pose == "ride":
            lean = 0.18 * (1 if rng.random() < 0.5 else -1)
            hip_v = seat[1]
            head_b = seat[0] + lean * 2.2
            hc = _circle_points(head_b, hip_v + 0.78, 0.09, 8, ry=0.12)
            top_v = hip_v + 0.62
            polys.append(pt(hc[:, 0], hc[:, 1]))
            polys.append(pt([seat[0] - hip, seat[0] + hip, head_b + shoulder, head_b - shoulder],
                            [hip_v, hip_v, top_v, top_v]))
            # legs down to the pedals, one bent forward
            for foot in (seat[0] + 0.15, seat[0] + 0.35):
                polys.append(pt([seat[0] - 0.07, seat[0] + 0.07, foot + 0.06, foot - 0.06],
                                [hip_v, hip_v, 0.2, 0.2]))
            hand = seat[0] + lean * 3.0
            polys.append(pt([head_b - 0.05, head_b + 0.05, hand + 0.04, hand - 0.04],
                            [top_v - 0.05, top_v - 0.05, hip_v + 0.25, hip_v + 0.25]))
        else:
            hip_v = 0.5 * h
            top_v = h - 0.24
            polys.append(pt(hc[:, 0], hc[:, 1]))
            coat = rng.random() < 0.3
            low = hip_v - (0.25 if coat else 0.0)
            spread = hip * (1.3 if coat else 1.0)
            polys.append(pt([-shoulder, shoulder, spread, -spread], [top_v, top_v, low, low]))
            stride = {"stand": 0.0, "walk_front": 0.05, "walk_side": rng.uniform(0.1, 0.25)}[pose]
            for sign in (-1, 1):
                foot = sign * (0.08 + stride) if side else sign * (0.09 + stride)
                start = sign * 0.06
                polys.append(pt([start - 0.09, start + 0.09, foot + 0.07, foot - 0.07],
                                [hip_v + 0.02, hip_v + 0.02, 0.0, 0.0]))
            swing = 0.0 if pose == "stand" else rng.uniform(0.03, 0.12)
            for sign in (-1, 1):
                if side:
                    hand = -sign * swing * 1.5
                    base = 0.0
                else:
                    hand = sign * (shoulder + 0.01 + swing * 0.3)
                    base = sign * (shoulder - 0.05)
                arm_v = hip_v - 0.05 if rng.random() < 0.8 else top_v - 0.1   # phone / hip
                polys.append(pt([base - 0.045, base + 0.045, hand + 0.04, hand - 0.04],
                                [top_v, top_v, arm_v, arm_v]))
            if rng.random() < 0.2:   # a bag
                b = (shoulder + 0.1) * (1 if rng.random() < 0.5 else -1)
                polys.append(pt([b - 0.12, b + 0.12, b + 0.12, b - 0.12],
                                [hip_v + 0.15, hip_v + 0.15, hip_v - 0.2, hip_v - 0.2]))
        self.paint_object(label, jittered(rng, (160, 60, 60), 70), polys)

    def two_wheeler(self, label, x, z, facing):
        """A bicycle (label 33: rings, a thin frame) or motorcycle (32: solid wheels, a body),
        side view in the plane z; returns the seat (dx, v) for a rider."""
        s = self.scale(z)
        wheel = 0.34 if label == 33 else 0.32
        base = 1.05 if label == 33 else 1.4
        rear, front = -base / 2 * facing, base / 2 * facing
        def pt(b, v):
            return np.array(self.project(x + b, v, z))
        polys, holes = [], []
        for hub in (rear, front):
            polys.append(np.stack(self.project(*(_circle_points(x + hub, wheel, wheel, 12).T),
                                               z), axis=1))
            if label == 33:
                inner = wheel - max(0.05, 1.1 / s)
                if inner > 0.5 / s:
                    holes.append(np.stack(self.project(*(_circle_points(
                        x + hub, wheel, inner, 12).T), z), axis=1))
        if label == 33:
            seat, crank, head = (-0.15 * facing, 0.92), (0.0, 0.3), (0.32 * facing, 0.9)
            half = max(0.5, 0.025 * s)
            for a, b in ((rear, crank), (seat, crank), (seat, head), (crank, head),
                         ((rear, wheel), seat), ((front, wheel), head),
                         (head, (0.3 * facing, 1.05)), ((-0.22 * facing, 0.95),
                                                        (-0.05 * facing, 0.95))):
                a = a if isinstance(a, tuple) else (a, wheel)
                b = b if isinstance(b, tuple) else (b, wheel)
                polys.append(self.thick_line(pt(*a), pt(*b), half))
            rider_seat = (-0.12 * facing, 0.95)
        else:
            body = np.array([(-0.55, 0.35), (-0.6, 0.75), (-0.1, 0.85), (0.25, 0.95),
                             (0.45, 1.1), (0.55, 0.5), (0.3, 0.3)])
            polys.append(np.stack(self.project(x + body[:, 0] * facing, body[:, 1], z), axis=1))
            rider_seat = (-0.2 * facing, 0.85)
        paint = (30, 30, 30) if self.rng.random() < 0.5 else (119, 30, 40)
        holes_after = [h for h in holes]
        # the frame crosses the rings' holes: rasterise wheels with holes, then the frame
        if holes_after:
            where = self.polygon_mask(polys[:2], holes_after)
            frame = self.polygon_mask(polys[2:])
            if where is None and frame is None:
                return rider_seat
            rows = np.concatenate([w[0] for w in (where, frame) if w is not None])
            cols = np.concatenate([w[1] for w in (where, frame) if w is not None])
            if len(rows):
                c = self.c
                c.counts[label] = c.counts.get(label, 0) + 1
                c.labels[rows, cols] = label
                c.instances[rows, cols] = label * 1000 + c.counts[label]
                self.photo_colour[rows, cols] = jittered(self.rng, paint, 30)
        else:
            self.paint_object(label, jittered(self.rng, paint, 30), polys)
        return rider_seat


def _street_background(st, rng):
    """Road, pavements, facades / trees on both sides and across the far end, sky, terrain,
    poles and signs: label ids and colours per pixel, vectorised."""
    c = st.c
    height, width = st.height, st.width
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    left, right = -rng.uniform(3.0, 10.0), rng.uniform(2.0, 7.0)
    walk_l, walk_r = rng.uniform(2.0, 7.0), rng.uniform(2.0, 7.0)
    face_l, face_r = left - walk_l, right + walk_r
    far = rng.uniform(35.0, 140.0)
    labels = np.full((height, width), 23, dtype=np.int64)     # sky
    # ground: depth of each row below the horizon
    below = rows > st.horizon
    z_ground = np.where(below, st.f * st.cam / np.maximum(rows - st.horizon, 1e-6), np.inf)
    x_ground = (cols - st.cx) * z_ground / st.f
    ground = np.where(x_ground < left, 8, np.where(x_ground > right, 8, 7))
    if rng.random() < 0.4:    # a strip of grass between pavement and facade
        strip = rng.uniform(1.0, 4.0)
        ground = np.where((x_ground < face_l + strip) | (x_ground > face_r - strip), 22, ground)
    # facades: the plane x = face_l (left) or face_r (right) hit by each column's ray
    dx = (cols - st.cx) / st.f
    z_face = np.where(dx < 0, face_l / np.minimum(dx, -1e-9), face_r / np.maximum(dx, 1e-9))
    z_face = np.minimum(z_face, far)                      # or the facade across the end
    v_face = st.cam - (rows - st.horizon) * z_face / st.f  # height of the hit point
    # segments along the street: buildings of varied heights, gaps of trees
    edges = np.cumsum(rng.uniform(6.0, 22.0, size=40))
    seg_l = np.searchsorted(edges, z_face)
    seg_r = seg_l + 40 * (dx > 0)
    seg = np.where(z_face >= far, 80, seg_r)
    tops = rng.uniform(7.0, 24.0, size=81)
    kinds = rng.random(81) < 0.22                          # tree segments
    tops[80] = rng.uniform(8.0, 25.0)
    kinds[80] = rng.random() < 0.15
    wobble = np.sin(cols * 0.9 + rng.uniform(0, 6)) * 1.2 + np.sin(cols * 0.37) * 1.5
    top = tops[seg] + np.where(kinds[seg], wobble, 0.0)
    hits_facade = (v_face >= 0) & (v_face <= top)
    behind = (z_ground > z_face) | ~below
    facade = np.where(kinds[seg], 21, 11)
    labels = np.where(behind & hits_facade, facade, labels)
    labels = np.where(below & ~(behind & (v_face >= 0)), ground, labels)
    labels = np.where(below & behind & (v_face < 0), ground, labels)
    c.labels[:] = labels
    c.instances[:] = labels
    table = np.zeros((34, 3), dtype=np.float32)
    for label, colour in _STREET_COLOURS.items():
        table[label] = jittered(rng, colour, 15)
    st.photo_colour[:] = table[labels]
    # street trees on the pavements, crowns overhanging (in front of the facades)
    things = []
    for side, kerb in ((-1, left - 0.6), (1, right + 0.6)):
        if rng.random() < 0.5:
            z = rng.uniform(4.0, 15.0)
            while z < min(far, 80.0):
                things.append(("tree", side, kerb, z))
                z += rng.uniform(6.0, 14.0)
        z = rng.uniform(3.0, 15.0)
        while z < min(far, 90.0):
            things.append(("pole", side, kerb + side * rng.uniform(-0.2, 0.4), z))
            z += rng.uniform(8.0, 25.0)
    def window(x1, y1, x2, y2):
        """Integer slices of an image window (clipped), or None when it is empty."""
        x1, x2 = max(0, int(np.floor(x1))), min(width, int(np.ceil(x2)) + 1)
        y1, y2 = max(0, int(np.floor(y1))), min(height, int(np.ceil(y2)) + 1)
        return (slice(y1, y2), slice(x1, x2)) if x2 > x1 and y2 > y1 else None

    def put(where, region, label, colour):
        c.labels[where][region], c.instances[where][region] = label, label
        st.photo_colour[where][region] = colour

    for kind, side, x, z in sorted(things, key=lambda t: -t[3]):
        s = st.scale(z)
        px, bottom = st.project(x, 0.0, z)
        if kind == "tree":
            cx, cy = st.project(x, rng.uniform(4.5, 7.0), z)
            r = rng.uniform(1.8, 3.2) * s
            where = window(min(cx - 1.3 * r, px - 1), cy - r, max(cx + 1.3 * r, px + 1), bottom)
            if where is None:
                continue
            wr, wc = rows[where], cols[where]
            trunk = (np.abs(wc - px) <= max(0.5, 0.15 * s)) & (wr <= bottom) & (wr >= cy)
            crown = ((wc - cx) / max(r, 0.5)) ** 2 + ((wr - cy) / max(r * 0.8, 0.5)) ** 2 \
                <= 1.0 + 0.25 * np.sin(np.arctan2(wr - cy, wc - cx) * 5)
            put(where, trunk | crown, 21, jittered(rng, (60, 105, 40), 20))
        else:
            top_row = st.project(x, rng.uniform(4.0, 8.0), z)[1]
            half = max(0.5, 0.08 * s)
            where = window(px - half, top_row, px + half, bottom)
            if where is not None:
                put(where, (np.abs(cols[where] - px) <= half) & (rows[where] <= bottom)
                    & (rows[where] >= top_row), 17, (125, 125, 125))
            if rng.random() < 0.5:   # a sign or a traffic light on top
                label = 20 if rng.random() < 0.7 else 19
                half = max(0.5, rng.uniform(0.3, 0.6) * s)
                tall = max(1.0, rng.uniform(0.5, 1.0) * s)
                where = window(px - half, top_row, px + half, top_row + tall)
                if where is not None:
                    put(where, (np.abs(cols[where] - px) <= half) & (rows[where] >= top_row)
                        & (rows[where] <= top_row + tall), label, _STREET_COLOURS[label])
    return left, right, face_l, face_r, far


def street_scene(height, width, rng):
    c = Canvas(height, width, rng)
    st = _Street(c, rng)
    left, right, face_l, face_r, far = _street_background(st, rng)
    objects = []   # (depth, painter)
    # rows of parked cars along the kerbs
    for side, kerb in ((-1, left), (1, right)):
        if rng.random() < 0.5:
            continue
        x = kerb - side * rng.uniform(0.95, 1.25)
        # from beside the camera on: the nearest cars of a row are cut by the image border and
        # overlap the next ones' boxes, as in the real maps (other cars' pixels fill 12 % of
        # a real eligible car box, 9 % here, 7 % when rows began at 12 m)
        z = rng.uniform(6.0, 60.0)
        angled = rng.uniform(0.4, 1.0) if rng.random() < 0.12 else 0.0   # angle parking
        while z < min(far - 5, 90.0):
            kind = ("sedan", "hatch", "van")[rng.choice(3, p=(0.45, 0.35, 0.2))]
            length = {"sedan": 4.6, "hatch": 4.0, "van": 4.9}[kind] * rng.uniform(0.92, 1.08)
            height_m = {"sedan": 1.45, "hatch": 1.5, "van": 1.85}[kind] * rng.uniform(0.95, 1.05)
            width_m = rng.uniform(1.7, 1.95)
            yaw = rng.normal(0.0, 0.05) + (np.pi if rng.random() < 0.5 else 0.0)
            if angled:
                yaw += side * angled
            objects.append((z, ("vehicle", 26, x + rng.normal(0, 0.1), z, yaw, kind,
                                length, width_m, height_m)))
            gap = rng.uniform(0.3, 1.6) if rng.random() < 0.8 else rng.uniform(4.0, 16.0)
            z += length + gap
    # cars (and now and then a truck / bus / tram) in the lanes, seen from the rear or front
    for _ in range(rng.poisson(1.0)):
        x = rng.uniform(left + 1.0, right - 1.0)
        z = rng.uniform(9.0, min(far - 8, 70.0))
        roll = rng.random()
        if roll < 0.92:
            yaw = rng.normal(0.0, 0.1) + (np.pi if x < 0 and rng.random() < 0.7 else 0.0)
            if rng.random() < 0.15:   # turning
                yaw += rng.uniform(-1.3, 1.3)
            for _ in range(1 if rng.random() < 0.5 else rng.integers(2, 5)):   # a queue
                kind = ("sedan", "hatch", "van")[rng.choice(3, p=(0.45, 0.35, 0.2))]
                length = {"sedan": 4.6, "hatch": 4.0, "van": 4.9}[kind]
                objects.append((z, ("vehicle", 26, x + rng.normal(0, 0.3), z, yaw, kind,
                                    length, rng.uniform(1.7, 1.95),
                                    {"sedan": 1.45, "hatch": 1.5, "van": 1.85}[kind])))
                z += length + rng.uniform(0.8, 5.0)
                yaw = rng.normal(0.0, 0.1) + (np.pi if x < 0 else 0.0) * (np.cos(yaw) < 0)
        else:
            label = (27, 28, 31)[rng.choice(3, p=(0.5, 0.35, 0.15))]
            size = {27: (7.0, 2.4, 3.0), 28: (12.0, 2.55, 3.2), 31: (25.0, 2.6, 3.4)}[label]
            objects.append((z, ("vehicle", label, x, z, rng.normal(0.0, 0.1), "big", *size)))
    if rng.random() < 0.25:   # a car crossing at the far end
        z = rng.uniform(15.0, min(far, 60.0))
        objects.append((z, ("vehicle", 26, rng.uniform(left - 5, right + 5), z, "across",
                            "sedan", 4.5, 1.8, 1.5)))
    # pedestrians on the pavements (some in groups, some crossing)
    for _ in range(rng.poisson(2.8)):
        side = -1 if rng.random() < 0.5 else 1
        kerb, face = (left, face_l) if side < 0 else (right, face_r)
        if rng.random() < 0.12:
            x = rng.uniform(left, right)
        else:
            x = rng.uniform(min(kerb, face), max(kerb, face))
        z = rng.uniform(_NEAREST[24], 60.0)
        for member in range(1 if rng.random() < 0.85 else rng.integers(2, 4)):
            pose = ("stand", "walk_front", "walk_side")[rng.integers(3)]
            offset = member * rng.uniform(0.45, 0.8)
            objects.append((z + member * rng.uniform(-0.3, 0.6),
                            ("person", 24, x + offset, z + member * 0.2, pose,
                             rng.uniform(1.5, 1.9))))
    # parked bicycles and motorcycles, riders on them
    for _ in range(rng.poisson(0.45)):
        side = -1 if rng.random() < 0.5 else 1
        kerb, face = (left, face_l) if side < 0 else (right, face_r)
        x = rng.uniform(min(kerb, face), max(kerb, face))
        u = rng.random()
        label = 33 if rng.random() < 0.6 else 32
        z = _NEAREST[label] + u * (45.0 - _NEAREST[label])
        objects.append((z, ("two", label, x, z, False)))
    for _ in range(rng.poisson(0.35)):
        x = rng.uniform(left + 0.5, right + 1.0)
        u = rng.random()
        label = 33 if rng.random() < 0.5 else 32
        z = _NEAREST[label] + u * (50.0 - _NEAREST[label])
        objects.append((z, ("two", label, x, z, True)))
    for _, spec in sorted(objects, key=lambda o: -o[0]):   # far objects first
        if spec[0] == "vehicle":
            st.vehicle(*spec[1:])
        elif spec[0] == "person":
            st.person(*spec[1:])
        else:
            _, label, x, z, ridden = spec
            facing = 1 if rng.random() < 0.5 else -1
            seat = st.two_wheeler(label, x, z, facing)
            if ridden:
                st.person(25, x, z - 0.05, "ride", rng.uniform(1.6, 1.85), seat=seat)
    # the photo: colours per region, texture noise, light falloff
    texture = np.full((height, width), 6.0, dtype=np.float32)
    for label, amount in _STREET_TEXTURE.items():
        texture[c.labels == label] = amount
    c.photo = st.photo_colour + rng.normal(0.0, 1.0, size=(height, width, 3)).astype(
        np.float32) * texture[:, :, None]
    return c.finish()
