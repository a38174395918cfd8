from nbhosting_core.system.doctor import Check, subid_overlaps

ENTRIES = [("admin", 100000, 65536), ("nbh-abc", 2**31, 1024), ("other", 2**31 + 5000, 10)]


def test_other_users_ranges_inside_the_students_space_are_reported():
    assert subid_overlaps(ENTRIES, 2**31, 2**31 + 1_000_000, "nbh-") == ["other"]


def test_nbhostings_own_ranges_and_disjoint_ones_are_fine():
    assert subid_overlaps(ENTRIES, 2**31, 2**31 + 4999, "nbh-") == []
    assert subid_overlaps(ENTRIES, 165536, 200000, "nbh-") == []
    assert subid_overlaps(ENTRIES, 165535, 200000, "nbh-") == ["admin"]


def test_doctor_warns_when_the_image_does_not_make_kernels_the_oom_killers_first_choice(tmp_path):
    from nbhosting_core import Settings
    from nbhosting_core.system.doctor import EXPENDABLE, limit_checks

    def oom_order() -> Check:
        return next(c for c in limit_checks(Settings(image_rootfs=tmp_path)) if c.name == "oom order")

    assert not oom_order().ok and not oom_order().required
    wrapper = tmp_path / EXPENDABLE.lstrip("/")
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text("#!/bin/sh\n")
    assert oom_order().ok and "not its Jupyter server" in oom_order().detail


def test_doctor_names_every_limit_and_the_container_caps():
    from nbhosting_core import Settings
    from nbhosting_core.system.doctor import limit_checks

    names = [c.name for c in limit_checks(Settings())]
    for name in ("limits", "memory", "processes", "cpu share", "oom order", "container tmp", "container log"):
        assert name in names


def test_doctor_shows_the_doors_limits_and_where_the_cap_comes_from():
    from nbhosting_core import Settings
    from nbhosting_core.system.doctor import door_checks

    rate, cap = door_checks(Settings(), mem_total=24 * 2**30)
    assert "per platform 300 at once, then 60/min" in rate.detail and "per client address" in rate.detail
    assert "at most 130 servers" in cap.detail and "160 MiB a server typically uses" in cap.detail
    assert "at most 3 servers" in door_checks(Settings(max_running=3), mem_total=24 * 2**30)[1].detail


def test_doctor_says_when_kernels_have_no_network_at_all():
    from nbhosting_core import Settings, SubprocessRunner
    from nbhosting_core.system.doctor import egress_check

    check = egress_check(Settings(egress=False), SubprocessRunner())
    assert check.ok and "no network" in check.detail


def test_doctor_says_where_servers_are_served_and_warns_of_what_path_mode_leaves(tmp_path):
    from nbhosting_core import Settings
    from nbhosting_core.system.doctor import origins_check

    own = origins_check(Settings(data_root=tmp_path))
    assert own.ok and "https://<key>.nb.localhost" in own.detail and "resolves to the loopback" in own.detail
    assert "framed by 'self' https://localhost:8443" in own.detail
    real = {"data_root": tmp_path, "site_address": "example.org", "public_url": "https://example.org"}
    assert "wildcard DNS record *.nb.example.org" in origins_check(Settings(**real)).detail
    assert "Certificate Transparency" in origins_check(Settings(**real, servers_tls="on_demand")).detail
    shared = origins_check(Settings(data_root=tmp_path, origin_mode="path"))
    assert not shared.ok and not shared.required and "one origin shared by all students" in shared.detail
