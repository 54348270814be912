import pytest

from geo import boundaries
from geo.areas import build_area
from geo.crs import metric_for
from geo.jurisdiction import OutsideJurisdiction, check_within


def grown(code, metres):
    g = boundaries.geometry_of(code)
    proj = metric_for(g)
    return proj.inverse(proj.forward(g).buffer(metres))


def test_grobogan_operator_cannot_target_palu():
    with pytest.raises(OutsideJurisdiction) as exc:
        check_within("33.15", build_area({"codes": ["72.71"]}).geometry)
    err = exc.value
    assert err.code == "outside-jurisdiction"
    assert "72.71" in err.touched_codes
    assert err.outside_km2 == pytest.approx(357, rel=0.02)
    assert "72.71" in str(err)


def test_tolerance_accepts_a_polygon_poking_50_m_over_the_border():
    assert check_within("33.15", grown("33.15", 50)).jurisdiction == "33.15"


def test_two_km_over_the_border_names_the_neighbours():
    with pytest.raises(OutsideJurisdiction) as exc:
        check_within("33.15", grown("33.15", 2000))
    assert {"33.16", "33.21"} <= set(exc.value.touched_codes)
    assert "33.15" not in exc.value.touched_codes


def test_inside_areas_and_provinsi_jurisdiction():
    check_within("33.15", build_area({"codes": ["33.15.13"]}).geometry)
    check_within("33", build_area({"codes": ["33.15", "33.09"]}).geometry)
    check_within("72.71", build_area({"codes": ["72.71.01.1010"]}).geometry)


def test_national_jurisdiction_accepts_anywhere_in_indonesia():
    assert check_within(None, build_area({"codes": ["72.71", "31.71"]}).geometry).jurisdiction is None


def test_sea_is_refused_unless_allowed():
    coast = build_area({"circle": {"lon": 119.84, "lat": -0.78, "radius_km": 3}}).geometry  # Palu bay
    with pytest.raises(OutsideJurisdiction) as exc:
        check_within("72.71", coast)
    assert exc.value.at_sea
    assert check_within("72.71", coast, allow_sea=True).sea_outside_km2 > 1
