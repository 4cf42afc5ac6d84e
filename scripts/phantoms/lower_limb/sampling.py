"""Drawing the random parameters of one bilateral lower-limb CT: :func:`sample_lower_limb_params`."""

from __future__ import annotations

import numpy as np

from .anatomy import NUM_SLICES, SHAPE_XY, SPACING, TISSUE_HU
from .bone_fields import fibula_field, tibia_field
from .outline import OUTLINE_OX, OUTLINE_OY, OUTLINE_RX, OUTLINE_RY, OUTLINE_Z, axis_offset, outline, soft_tissue_rotation
from .params import BodyHabitus, FemurParams, FibulaParams, LegParams, LowerLimbParams, PatellaParams, TibiaParams

__all__ = ["sample_lower_limb_params"]


def _sample_leg(rng: np.random.Generator, side: int, G: BodyHabitus) -> LegParams:
    """Anatomy and pose of one leg (``side`` -1 right, +1 left); lengths in mm."""
    u = rng.uniform
    s = G.size * u(0.97, 1.03)
    # --- femur (femur frame: x lateral, y anterior, z superior from the distal condyle surface) ---
    W = 78.0 * s * u(0.96, 1.04)
    wn = W * u(0.22, 0.27)
    cond_w = (W - wn) / 2.0
    ay, az = u(25.0, 29.0) * s, u(20.0, 23.5) * s
    ay_l, az_l = ay * u(0.95, 1.02), az * u(0.92, 1.0)
    yc = u(-10.0, -6.0) * s
    tro_c = (u(-1.0, 2.0), yc + 0.55 * ay, 1.45 * az)
    tro_r = (W / 2 * 0.84, 0.7 * ay, 0.85 * az)
    tro_front = tro_c[1] + tro_r[1]
    groove = u(3.5, 6.0)
    shx, shy = u(13.0, 15.0) * s, u(12.5, 14.5) * s
    sx, sy = u(-2.0, 2.0), u(0.0, 4.0)
    flare = u(50.0, 65.0) * s
    la = u(2.0, 4.0)
    # notch roof: through the whole depth below the trochlea, posterior only higher up
    xn = u(-1.0, 1.0)
    zlo, zhi = tro_c[2] - tro_r[2], u(1.65, 1.85) * az
    ylo, yhi = tro_front - groove + 2.0, yc - ay - 2.0
    t_epi, t_shaft = u(1.3, 1.8), u(4.5, 6.5)
    cav0 = u(45.0, 60.0) * s
    femur = FemurParams(
        width=W, notch_width=wn, medial_condyle_x=-(wn / 2 + cond_w / 2), lateral_condyle_x=wn / 2 + cond_w / 2,
        condyle_half_width=cond_w / 2 * 1.08, condyle_radius_ap=ay, condyle_radius_si=az,
        lateral_condyle_radius_ap=ay_l, lateral_condyle_radius_si=az_l, condyle_centre_y=yc, trochlea_centre=tro_c,
        trochlea_radii=tro_r, trochlea_front=tro_front, groove_depth=groove, shaft_half_width=shx,
        shaft_half_depth=shy, shaft_x=sx, shaft_y=sy, metaphysis_z=1.1 * az, flare=flare, linea_aspera=la,
        notch_x=xn, notch_roof=(zlo, ylo, (yhi - ylo) / (zhi - zlo)), cortex_epiphysis=t_epi, cortex_shaft=t_shaft,
        marrow_cavity_z=cav0, joint_gap=u(2.0, 3.0),
    )
    # --- patella (femur frame) ---
    flex = G.flexion * u(0.8, 1.2)
    flex_f = flex * u(0.4, 0.6)
    flex_t = flex - flex_f
    r = (u(20.0, 24.0) * s, u(10.0, 12.0) * s, u(19.0, 23.0) * s)
    c = (u(0.0, 5.0), tro_front + u(4.5, 6.5) + r[1], tro_c[2] + u(4.0, 16.0) - 0.6 * flex)
    patella = PatellaParams(radii=r, centre=c, tilt=np.deg2rad(u(-5.0, 12.0)), cortex=u(1.4, 2.2))
    # --- tibia (tibia frame: x lateral, y anterior, z superior from the plateau) ---
    Wt = W * u(1.0, 1.06)
    Dt = u(44.0, 50.0) * s
    slope = float(np.tan(np.deg2rad(u(4.0, 10.0))))
    conc_m, conc_l = u(1.5, 3.0), u(0.5, 1.5)
    em_h, em_w = u(6.0, 9.0), u(3.5, 5.0)
    half = (Wt / 2 - em_w) / 2
    t_shx, t_shy = u(13.0, 15.0) * s, u(12.0, 14.0) * s
    scx, scy = u(-4.0, 0.0), u(2.0, 6.0)
    taper = u(45.0, 60.0) * s
    tri = u(0.3, 0.45)
    tub_z = -u(24.0, 32.0) * s
    tub_x = u(1.0, 5.0)
    tub_r = (u(9.0, 12.0), 6.0, 12.0)
    pn = (u(10.0, 14.0), u(3.5, 5.5))
    tt_epi, tt_shaft = u(1.2, 1.7), u(4.0, 6.0)
    tibia = TibiaParams(
        width=Wt, depth=Dt, slope=slope, medial_concavity=conc_m, lateral_concavity=conc_l, eminence_height=em_h,
        eminence_width=em_w, compartment_half_width=half, medial_compartment_x=-(em_w + half),
        lateral_compartment_x=em_w + half, shaft_half_width=t_shx, shaft_half_depth=t_shy, shaft_x=scx, shaft_y=scy,
        taper=taper, triangularity=tri, tuberosity_z=tub_z, tuberosity_x=tub_x, tuberosity_radii=tub_r,
        posterior_notch=pn, cortex_epiphysis=tt_epi, cortex_shaft=tt_shaft, marrow_cavity_depth=u(50.0, 65.0) * s,
        joint_gap=u(2.0, 3.0),
    )
    # --- fibula (tibia frame) ---
    hz = -u(14.0, 20.0) * s
    head_c = [Wt / 2 * u(0.5, 0.62), -Dt / 2 * u(0.7, 0.9), hz]
    head_r = (u(10.0, 12.0) * s, u(9.5, 11.0) * s, u(9.0, 11.0) * s)
    shaft_r = u(6.0, 7.5) * s
    shaft_d = (-u(0.0, 5.0), u(2.0, 8.0))
    fibula = FibulaParams(head_centre=head_c, head_radii=head_r, shaft_radius=shaft_r, shaft_offset=shaft_d,
                          cortex_epiphysis=u(1.2, 1.6), cortex_shaft=u(2.2, 3.2))
    _place_fibula(tibia, fibula)
    # --- pose ---
    dz = u(-5.0, 5.0)
    phi_f = np.deg2rad(u(-8.0, 15.0))
    phi_t = phi_f + np.deg2rad(u(-2.0, 6.0))
    valg_f = float(np.tan(np.deg2rad(u(3.0, 8.0))))
    valg_t = float(np.tan(np.deg2rad(u(-3.0, 3.0))))
    # --- soft tissue ---
    m = G.muscularity * u(0.97, 1.03)
    rx = OUTLINE_RX * s * m * u(0.96, 1.04, size=OUTLINE_Z.size)
    ry = OUTLINE_RY * s * m * u(0.96, 1.04, size=OUTLINE_Z.size)
    four_a = rng.normal(0.0, 0.025, size=4) * np.array([1.0, 1.0, 0.8, 0.5])
    four_b = rng.normal(0.0, 0.015, size=4)
    four_ph = u(0, 2 * np.pi, size=4)
    four_w = u(-0.01, 0.01, size=4)
    fat = G.fat * u(0.9, 1.1)
    fat_dir = np.deg2rad(u(150.0, 250.0))  # thickest fat: medial / posteromedial
    fat_amp = u(0.15, 0.35)
    skin = u(1.2, 2.0)
    ylim_jit = u(-4.0, 4.0)
    ylim_c = u(0.006, 0.014)
    ylim_w = (u(1.5, 5.0), u(10.0, 20.0), u(0, 2 * np.pi))
    nsep = int(rng.integers(5, 8))
    septa = [
        (
            u(0, 2 * np.pi),  # angle in the leg frame
            u(-0.004, 0.004),  # drift (rad per mm along z)
            u(-0.6, 0.6),  # curvature (mm per 100 mm^2)
            u(0.9, 2.0),  # width
            u(22.0, 30.0) * s,  # starts this far from the bone centre
            u(0.5, 2.5),  # wobble amplitude
            u(12.0, 30.0),  # wobble wavelength
            u(0, 2 * np.pi),  # wobble phase
        )
        for _ in range(nsep)
    ]
    gs_sep = (u(28.0, 36.0) * s, u(1.0, 2.0))
    pop = (u(-4.0, 4.0), u(14.0, 19.0) * s, u(10.0, 14.0) * s)
    gsv = (np.deg2rad(u(190.0, 225.0)), u(1.8, 2.8))
    return LegParams(
        side=side, lateral_sign=float(side), size=s, femur=femur, femur_flexion=flex_f, tibia_flexion=flex_t,
        patella=patella, tibia=tibia, fibula=fibula, knee_dz=dz, femur_rotation=phi_f, tibia_rotation=phi_t,
        femur_valgus=valg_f, tibia_valgus=valg_t, femur_flexion_tan=float(np.tan(np.deg2rad(flex_f))),
        tibia_flexion_tan=float(np.tan(np.deg2rad(flex_t))), tilt=G.tilt, outline_rx=rx, outline_ry=ry,
        outline_ox=OUTLINE_OX * s, outline_oy=OUTLINE_OY * s, outline_amplitude=four_a,
        outline_amplitude_drift=four_b, outline_phase=four_ph, outline_phase_drift=four_w, fat=fat,
        fat_direction=fat_dir, fat_asymmetry=fat_amp, skin=skin, muscle_front_shift=ylim_jit,
        muscle_front_curvature=ylim_c, muscle_front_wobble=ylim_w, septa=septa, gastrocnemius_soleus_plane=gs_sep,
        popliteal_fat=pop, saphenous_vein=gsv,
    )


def _place_fibula(T: TibiaParams, B: FibulaParams) -> None:
    """Move the fibular head away from the tibia until their gap is at least 2.5 mm."""
    hc = B.head_centre
    direction = np.array([hc[0], hc[1]])
    direction /= np.linalg.norm(direction)
    for _ in range(6):
        hc = B.head_centre
        xs = np.arange(hc[0] - 16.0, hc[0] + 16.0, 1.0)
        ys = np.arange(hc[1] - 16.0, hc[1] + 16.0, 1.0)
        zs = np.arange(hc[2] - 16.0, hc[2] + 26.0, 1.0)
        Z, X, Y = np.meshgrid(zs, xs, ys, indexing="ij")
        tib = tibia_field(X, Y, Z, T)
        g = np.gradient(tib, 1.0)
        d_t = tib / np.clip(np.sqrt(sum(gi * gi for gi in g)), 0.25, None)
        fib = fibula_field(X, Y, Z, B) <= 0
        if not fib.any():
            break
        need = 2.5 - float(d_t[fib].min())
        if need <= 0:
            break
        B.head_centre = [hc[0] + direction[0] * (need + 0.3), hc[1] + direction[1] * (need + 0.3), hc[2]]


def sample_lower_limb_params(rng: np.random.Generator, num_slices: int = NUM_SLICES) -> LowerLimbParams:
    """Draw the random anatomy, pose and acquisition parameters of one bilateral lower-limb CT.

    Lengths are in mm. Scanner frame: X towards the patient's left, Y posterior, z superior (the
    world z of slice ``k`` is ``(k - (num_slices - 1) / 2) * 5``). The same generator state always
    gives the same parameters.

    Args:
        rng: numpy random generator (consumed).
        num_slices: number of slices of the volume (sets the range of the knee level).

    Returns:
        The volume's :class:`LowerLimbParams` (right leg first).
    """
    u = rng.uniform
    n = int(num_slices)
    z_joint = u(-1.0, 1.0) * min(25.0, 0.15 * n * SPACING[2])
    G = BodyHabitus(
        size=u(0.9, 1.1),
        muscularity=u(0.92, 1.1),
        fat=3.0 + 19.0 * u() ** 1.4,
        flexion=u(0.0, 10.0),
        tilt=float(np.tan(np.deg2rad(u(-3.0, 3.0)))),
    )
    hu = {k: TISSUE_HU[k][0] + u(-TISSUE_HU[k][1], TISSUE_HU[k][1]) for k in sorted(TISSUE_HU)}
    noise_sd = u(10.0, 25.0)
    noise_corr = u(0.6, 1.1)
    blur = u(0.45, 0.75)
    fov_mask = bool(u() < 0.5)
    # table (scanner frame): top surface curved upwards at the sides, optional foam pad
    table = bool(u() < 0.85)
    table_radius = u(500.0, 1500.0)
    table_shell = u(1.8, 3.0)
    table_core = u(25.0, 45.0)
    table_half_width = u(215.0, 260.0)
    pad = u(8.0, 25.0) if u() < 0.6 else 0.0
    legs = [_sample_leg(rng, side, G) for side in (-1, 1)]
    # in-plane position: knees side by side, kept inside the field of view
    gap = u(-5.0, 55.0)
    z_world = (np.arange(n) - (n - 1) / 2.0) * SPACING[2]
    zr_all = np.concatenate([z_world - z_joint - 10.0, z_world - z_joint + 10.0])
    half_w = []
    for L in legs:
        r = np.interp(zr_all, OUTLINE_Z, L.outline_rx + np.abs(L.outline_ox)).max()
        half_w.append(r * 1.08 + L.fat * (1.0 + L.fat_asymmetry) * 1.2 + 2.0)
    knee_w = [np.interp(0.0, OUTLINE_Z, L.outline_rx) + L.fat for L in legs]
    sep = knee_w[0] + knee_w[1] + gap
    shift = u(-15.0, 15.0)
    span = 0.5 * n * SPACING[2] + 30.0
    lat_max = max(max(L.femur_valgus, abs(L.tibia_valgus)) for L in legs) * span
    room = SHAPE_XY[0] * SPACING[0] / 2.0 - 4.0 - max(half_w) - lat_max
    if sep / 2 + abs(shift) > room:
        shift = np.sign(shift) * max(0.0, room - sep / 2)
        sep = min(sep, 2.0 * room)
    y0 = u(-25.0, 10.0)
    for L, side in zip(legs, (-1, 1)):
        L.x = shift + side * sep / 2.0
        L.y = y0 + u(-4.0, 4.0)
    # table height: the legs are flattened on it where they are thickest
    ext = []
    dX = np.arange(-60.0, 61.0, 3.0)[:, None]
    dY = np.arange(0.0, 170.0, 1.0)[None, :]
    for L in legs:
        zr = z_world - (z_joint + L.knee_dz)
        _, cy = axis_offset(L, zr)
        for zz, yy in zip(zr.tolist(), cy.tolist()):
            phi = soft_tissue_rotation(L, zz)
            lat, ant = L.lateral_sign * dX, -dY
            x = lat * np.cos(phi) - ant * np.sin(phi)
            y = lat * np.sin(phi) + ant * np.cos(phi)
            _, skin, _ = outline(L, zz, x, y, np.float64(1e3))
            inside = (skin <= 0).any(axis=0)
            ext.append(L.y + yy + (dY[0, inside].max() if inside.any() else 0.0))
    ext = np.asarray(ext)
    y_top = min(float(np.percentile(ext, u(55.0, 80.0))), float(ext.max()) - 1.0)
    y_top = max(y_top, float(ext.max()) - 14.0)
    if not table:
        y_top = 1e4
    return LowerLimbParams(
        num_slices=n, knee_z=z_joint, habitus=G, tissue_hu=hu, noise_sd=noise_sd, noise_corr=noise_corr, blur=blur,
        fov_mask=fov_mask, table=table, table_radius=table_radius, table_shell=table_shell, table_core=table_core,
        table_half_width=table_half_width, pad=pad, legs=legs, pad_top=y_top,
    )
