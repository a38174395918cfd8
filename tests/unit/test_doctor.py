from nbhosting_core.system.doctor import subid_overlaps

ENTRIES = [("admin", 100000, 65536), ("nbh-abc", 2**31, 1024), ("other", 2**31 + 5000, 10)]


def test_other_users_ranges_inside_the_students_space_are_reported():
    assert subid_overlaps(ENTRIES, 2**31, 2**31 + 1_000_000, "nbh-") == ["other"]


def test_nbhostings_own_ranges_and_disjoint_ones_are_fine():
    assert subid_overlaps(ENTRIES, 2**31, 2**31 + 4999, "nbh-") == []
    assert subid_overlaps(ENTRIES, 165536, 200000, "nbh-") == []
    assert subid_overlaps(ENTRIES, 165535, 200000, "nbh-") == ["admin"]
