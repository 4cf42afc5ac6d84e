"""Vertebrae, discs and the spinal canal on the fine grid (3D): :class:`VertebralColumn`."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..geometry import intersect_box
from ..shapes import elliptic_capsule, smax, smin, sstep
from .anatomy import (
    CANCELLOUS,
    CORD,
    CORTICAL,
    CSF,
    DISC_ANNULUS,
    DISC_NUCLEUS,
    MUSCLE,
    OTHER_BONE,
    SACRUM_CORTEX,
    SACRUM_MARROW,
    SPACING,
    VISCERAL_FAT,
)
from .levels import NUM_LEVELS
from .scene import SpineScene, VertebraFrame

__all__ = ["vertebral_body_field", "VertebralColumn"]


def vertebral_body_field(u, v, w, a, b, H, dip, waist, conc, wedge):
    """Vertebral body: rounded superelliptic cylinder with a waist, concave endplates, a posterior
    concavity and an anterior/posterior wedge."""
    f32 = np.float32
    hw = H / 2
    wn = w * f32(1.0 / hw)
    aa = f32(a) * (1.0 - f32(waist) * np.clip(1.0 - wn * wn, 0.0, 1.0))
    vv = v - f32(conc) * np.exp(-((u * f32(1.0 / (0.45 * a))) ** 2)) * (v < 0)
    un, vn = u / aa, vv * f32(1.0 / b)
    r = np.where(vv >= 0, np.sqrt(un * un + vn * vn), np.cbrt(np.abs(un) ** 3 + np.abs(vn) ** 3))
    sd2 = (r - 1.0) * np.minimum(aa, f32(b))
    rc = np.clip(r, 0.0, 1.0)
    hh = f32(hw) - f32(dip) * (1.0 - rc * rc) + f32(wedge) * np.clip(vn, -1.0, 1.0)
    return smax(sd2, np.abs(w) - hh, 1.5), r


class VertebralColumn:
    """Vertebral bone (implicit, smooth union), discs and canal on the fine grid around the spine.

    Built from a :class:`~scripts.phantoms.spine.scene.SpineScene`: one implicit component (body,
    pedicles, laminae, processes; the sacrum's alae) per part of every level near the field of view,
    each with its index box. :meth:`build` paints them into the tissue map.
    """

    def __init__(self, ctx: SpineScene):
        self.ctx = ctx
        zlo, zhi = ctx.zf[0] - 4.0, ctx.zf[-1] + 4.0
        zc = ctx.C[:, 2]
        self.levels = [i for i in range(NUM_LEVELS) if zlo - 60.0 < zc[i] < zhi + 60.0]
        self.comps = []  # (box, fn(x, y, z) -> sdf, level)
        for i in self.levels:
            self._vertebra(i)

    def _add(self, i, lo, hi, fn, pad=1.5):
        F = self.ctx.F[i]
        wlo, whi = F.aabb(lo, hi)
        box = self.ctx.box(wlo, whi, pad)
        if box is not None:
            self.comps.append((box, fn, i))

    def _vertebra(self, i):
        d, F = self.ctx.dims, self.ctx.F[i]
        a, b, H = d.body_width[i] / 2, d.body_depth[i] / 2, d.body_height[i]
        cw, cd, pw, ph, pl = d.canal_width[i], d.canal_depth[i], d.pedicle_width[i], d.pedicle_height[i], d.pedicle_length[i]
        lt, lh = d.lamina_thickness[i], d.lamina_height[i]
        disc_below = d.disc_height[i]
        disc_above = d.disc_height[i - 1] if i > 0 else 4.0
        wl = float(sstep(10.5, 12.5, i))
        sac = i == NUM_LEVELS - 1
        dip = 0.04 * H if not sac else 0.5
        wedge = (-0.03 + 0.07 * wl) * H if i < 16 else 0.08 * H
        waist = 0.05 if not sac else 0.0
        if sac:
            def body(x, y, z, F=F):
                u, v, w = F.local(x, y, z)
                # the sacrum narrows caudally
                sc = 1.0 - 0.35 * np.clip(0.5 - w / H, 0.0, 1.0)
                return vertebral_body_field(u / sc, v, w, a, b, H, dip, waist, 2.0, 0.0)[0] * np.minimum(sc, 1.0)
        else:
            def body(x, y, z, F=F):
                u, v, w = F.local(x, y, z)
                return vertebral_body_field(u, v, w, a, b, H, dip, waist, 2.0, wedge)[0]
        self._add(i, (-a - 1, -b - 1, -H / 2 - 1), (a + 1, b + 1, H / 2 + 1), body)
        caps = []  # (A, B, rh, rv, rh1, rv1) in the local frame
        w_p = H / 2 - ph / 2 - 1.0 if not sac else H / 2 - 8.0
        if not sac:
            for sg in (-1.0, 1.0):
                ux = cw / 2 + pw / 2
                caps.append(((sg * (ux - 0.5), -b + 4.0, w_p), (sg * (ux + 1.0), -b - pl, w_p),
                             pw / 2, ph / 2, None, None))
        w_lam = w_p - 3.0 if not sac else H / 2 - 14.0
        s_base = (0.0, -b - cd - lt / 2, w_lam)
        for sg in (-1.0, 1.0):
            j = (sg * (cw / 2 + pw / 2), -b - pl - 1.0, w_lam)
            caps.append((j, s_base, lt / 2, lh / 2, None, None))
        # spinous process
        al = np.deg2rad(d.spinous_angle[i])
        sp0 = (0.0, -b - cd - lt / 2 + 2.0, w_lam)
        tip = (0.0, sp0[1] - d.spinous_length[i] * np.cos(al), w_lam - d.spinous_length[i] * np.sin(al))
        club = 1.25 if i < 12 else 1.05
        caps.append((sp0, tip, d.spinous_thickness[i] / 2, d.spinous_height[i] / 2, d.spinous_thickness[i] / 2 * club, d.spinous_height[i] / 2 * club))
        # transverse processes
        if d.transverse_length[i] > 0:
            ga = np.deg2rad(d.transverse_angle[i])
            w_tp = w_p - (1.0 if i < 12 else 0.25 * H)
            for sg in (-1.0, 1.0):
                r0 = np.array([sg * (cw / 2 + pw), -b - pl + 1.0, w_tp])
                tipp = r0 + d.transverse_length[i] * np.array([sg * np.cos(ga), -np.sin(ga), 0.06])
                rh, rv = d.transverse_radius_ap[i], d.transverse_radius_vertical[i]
                club = 1.2 if i < 11 else 1.0
                caps.append((tuple(r0), tuple(tipp), rh, rv, rh * club, rv * club))
        # articular processes (facet joints): thoracic coronal, lumbar sagittal
        du_s, dv_s = 3.0 * wl, 2.0 * (1 - wl)
        du_i, dv_i = -4.8 * wl, -4.8 * (1 - wl)
        for sg in (-1.0, 1.0):
            ux = cw / 2 + pw / 2 + 1.5
            sa = (sg * (ux + du_s), -b - pl - 1.0 + dv_s, w_p)
            sb = (sg * (ux + du_s + 0.5), -b - pl - 2.0 + dv_s, H / 2 + disc_above * 0.5 + 3.0)
            caps.append((sa, sb, 3.6, 4.6, None, None))
            if not sac:
                ia = (sg * (ux + du_i), -b - pl - 5.0 + dv_i, w_lam - 2.0)
                ib = (sg * (ux + du_i), -b - pl - 6.5 + dv_i, -H / 2 - disc_below * 0.5 - 3.0)
                caps.append((ia, ib, 3.2, 4.4, None, None))
        if sac:
            # alae (lateral masses to the sacroiliac joints) and the fused posterior plate
            for sg in (-1.0, 1.0):
                caps.append(((sg * a * 0.4, -b * 0.3, H / 2 - 12.0), (sg * (a + 22.0), -b * 0.55, H / 2 - 13.0),
                             14.0, 11.0, 13.0, 12.0))
                caps.append(((sg * (a + 18.0), -b * 0.6, H / 2 - 14.0), (sg * (a + 14.0), -b * 0.8, -H / 2 + 6.0),
                             9.0, 14.0, 7.0, 11.0))
                caps.append(((sg * (cw / 2 + 4.0), -b - 3.0, H / 2 - 10.0),
                             (sg * (cw / 2 + 5.0), -b - 6.0, -H / 2 + 6.0), 5.0, 9.0, None, None))
        for (pa, pb, rh, rv, rh1, rv1) in caps:
            pa, pb = np.asarray(pa, float), np.asarray(pb, float)
            rmax = max(rh, rv, rh1 or 0, rv1 or 0)
            lo, hi = np.minimum(pa, pb) - rmax, np.maximum(pa, pb) + rmax

            def fn(x, y, z, F=F, pa=pa, pb=pb, rh=rh, rv=rv, rh1=rh1, rv1=rv1):
                u, v, w = F.local(x, y, z)
                return elliptic_capsule(u, v, w, pa, pb, rh, rv, rh1=rh1, rv1=rv1)

            self._add(i, lo, hi, fn)

    def build(self, tissue: np.ndarray):
        """Paint canal contents, discs and vertebral bone into the fine tissue map (in place).

        Returns ``(box, vertebra_id)``: the box of the spine region and the level index + 1 of every
        vertebral bone voxel in it (0 elsewhere).
        """
        ctx, P, d = self.ctx, self.ctx.P, self.ctx.dims
        if not self.comps:
            return None, None
        lo = [min(c[0][a].start for c in self.comps) for a in range(3)]
        hi = [max(c[0][a].stop for c in self.comps) for a in range(3)]
        box = tuple(slice(l_, h_) for l_, h_ in zip(lo, hi))
        shape = tuple(h_ - l_ for l_, h_ in zip(lo, hi))
        acc = np.full(shape, 1e3, np.float32)
        vid = np.zeros(shape, np.uint8)
        for sl, fn, i in self.comps:
            loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo))
            sdf = fn(*ctx.coords(sl))
            cur = acc[loc]
            closer = sdf < cur
            vid[loc][closer] = i + 1
            acc[loc] = smin(cur, sdf, 1.5)
        bone = acc < 0
        sub = tissue[box]
        # canal (per vertebra, along its axis over the body and half of each disc)
        for i in self.levels:
            F = ctx.F[i]
            a, b, H = d.body_width[i] / 2, d.body_depth[i] / 2, d.body_height[i]
            cw, cd = d.canal_width[i], d.canal_depth[i]
            w0 = -H / 2 - d.disc_height[i] / 2 - 0.5
            w1 = H / 2 + (d.disc_height[i - 1] if i > 0 else 4.0) / 2 + 0.5
            if i == NUM_LEVELS - 1:
                cd, w0 = cd * 0.8, -H / 2
            vc = -b - cd / 2 + 1.0
            wlo, whi = F.aabb((-cw / 2, vc - cd / 2, w0), (cw / 2, vc + cd / 2, w1))
            sl = intersect_box(ctx.box(wlo, whi, 1.0), box)
            if sl is None:
                continue
            loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo))
            u, v, w = F.local(*ctx.coords(sl))
            rc = (u * np.float32(2.0 / cw)) ** 2 + ((v - np.float32(vc)) * np.float32(2.0 / cd)) ** 2
            inw = (w >= w0) & (w <= w1)
            canal = (rc < 1.0) & inw & ~bone[loc]
            t = sub[loc]
            t[canal] = VISCERAL_FAT  # epidural fat
            sac_ = (rc < 0.62) & canal
            t[sac_] = CSF
            if i < 13:
                cord_w = sstep(13.0, 12.2, i + 0.5 - w / H) if i >= 11 else 1.0
                rcord = ((u * np.float32(1 / 4.6)) ** 2 + ((v - np.float32(vc + 1.2)) * np.float32(1 / 3.6)) ** 2)
                t[sac_ & (rcord < cord_w)] = CORD
        # discs between consecutive bodies
        for i in self.levels:
            j = i + 1
            if j not in self.levels:
                continue
            Fi, Fj = ctx.F[i], ctx.F[j]
            ai, bi, Hi = d.body_width[i] / 2, d.body_depth[i] / 2, d.body_height[i]
            aj, bj, Hj = d.body_width[j] / 2, d.body_depth[j] / 2, d.body_height[j]
            if j == NUM_LEVELS - 1:
                aj, bj = ai * 1.0, bi * 1.0
            pi_ = Fi.world((0, 0, -Hi / 2))
            pj_ = Fj.world((0, 0, Hj / 2))
            Rm = 0.5 * (Fi.R + Fj.R)
            q_, r_ = np.linalg.qr(Rm)
            Rm = q_ * np.sign(np.diag(r_))[None, :]
            Fm = VertebraFrame(0.5 * (pi_ + pj_), Rm)
            ad, bd = 0.5 * (ai + aj) + 1.0, 0.5 * (bi + bj) + 1.0
            gap = float(np.linalg.norm(pi_ - pj_))
            hh = gap / 2 + 0.08 * max(Hi, Hj) + 6.0
            wlo, whi = Fm.aabb((-ad, -bd, -hh), (ad, bd, hh))
            sl = intersect_box(ctx.box(wlo, whi, 1.0), box)
            if sl is None:
                continue
            loc = tuple(slice(s.start - o, s.stop - o) for s, o in zip(sl, lo))
            xyz = ctx.coords(sl)
            um, vm, wm = Fm.local(*xyz)
            vv = vm - np.float32(2.0) * np.exp(-((um * np.float32(1 / (0.45 * ad))) ** 2)) * (vm < 0)
            rd = np.sqrt((um * np.float32(1 / ad)) ** 2 + (vv * np.float32(1 / bd)) ** 2)
            wi = Fi.local(*xyz)[2]
            wj = Fj.local(*xyz)[2]
            rc = np.clip(rd, 0, 1)
            disc = (rd < 1.0) & (wi <= -Hi / 2 + 0.06 * Hi * (1 - rc * rc) + 1.0)
            disc &= wj >= Hj / 2 - 0.06 * Hj * (1 - rc * rc) - 1.0
            disc &= ~bone[loc]
            t = sub[loc]
            disc &= (t != CSF) & (t != CORD)
            t[disc] = DISC_ANNULUS
            t[disc & (rd < 0.55) & (np.abs(wm) < 0.35 * gap + 1.0)] = DISC_NUCLEUS
        # keep a joint space between the spine and ribs / ilium
        near = acc < 1.6
        other = np.isin(sub, OTHER_BONE) & near & ~bone
        sub[other] = MUSCLE
        # cortex / cancellous core from the exact distance to the bone surface
        ii = np.nonzero(bone.any(axis=(1, 2)))[0]
        jj = np.nonzero(bone.any(axis=(0, 2)))[0]
        kk = np.nonzero(bone.any(axis=(0, 1)))[0]
        if len(ii):
            bb = (slice(max(ii[0] - 1, 0), ii[-1] + 2), slice(max(jj[0] - 1, 0), jj[-1] + 2),
                  slice(max(kk[0] - 1, 0), kk[-1] + 2))
            sub_b = bone[bb]
            edt = ndi.distance_transform_edt(sub_b, sampling=(SPACING[0], SPACING[1], ctx.dzf))
            cort = sub_b & (edt <= P.cortex_thickness)
            sacral = vid[bb] == NUM_LEVELS
            t = sub[bb]
            t[sub_b] = CANCELLOUS
            t[cort] = CORTICAL
            t[sub_b & sacral & ~cort] = SACRUM_MARROW
            t[cort & sacral] = SACRUM_CORTEX
        vid[~bone] = 0
        return box, vid

