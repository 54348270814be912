import pytest

from channels.social import XAccount, check_posting_caps, choose_account, code_contains

NATIONAL = XAccount("", "bnpb_indonesia")
SULTENG = XAccount("72", "bpbdsulteng")
PALU = XAccount("72.71", "bpbdpalu")
SIGI = XAccount("72.10", "bpbdsigi")
ACCOUNTS = [NATIONAL, SULTENG, PALU, SIGI]


@pytest.mark.parametrize(
    ("outer", "inner", "ok"),
    [
        ("72", "72.71.01.1004", True),
        ("72.71", "72.71", True),
        ("72.7", "72.71", False),  # whole segments only
        ("72.71", "72", False),
        ("72.71", "72.10.01", False),
        ("", "31.71", True),
    ],
)
def test_code_contains_compares_whole_segments(outer, inner, ok):
    assert code_contains(outer, inner) is ok


@pytest.mark.parametrize(
    ("codes", "handle"),
    [
        (["72.71.01.1004"], "bpbdpalu"),  # a desa in Palu: the city's own BPBD
        (["72.71", "72.71.02"], "bpbdpalu"),
        (["72.71.01", "72.10.03"], "bpbdsulteng"),  # Palu and Sigi together: the province
        (["72.03"], "bpbdsulteng"),  # Donggala has no account of its own
        (["31.71"], "bnpb_indonesia"),  # Jakarta: only the national account covers it
        ([], "bnpb_indonesia"),
    ],
)
def test_choose_account_picks_the_most_specific_covering_account(codes, handle):
    assert choose_account(ACCOUNTS, codes).handle == handle


def test_choose_account_without_a_covering_account():
    assert choose_account([SULTENG, PALU], ["31.71"]) is None
    assert choose_account([SULTENG, PALU], []) is None  # cannot guess a region for an unplaced alert
    assert choose_account([PALU], []) is PALU
    assert choose_account([], ["72"]) is None


def test_choose_account_ties_keep_configuration_order():
    other = XAccount("72.71", "bpbdpalu2")
    assert choose_account([PALU, other], ["72.71"]) is PALU


def test_caps_fit():
    check = check_posting_caps(3, account_posts_24h=90, app_posts_24h=1000)
    assert not check.exceeds and check.message_id == check.message_en == ""
    assert check_posting_caps(10, account_posts_24h=90, app_posts_24h=1657).exceeds is False


def test_account_cap_exceeded_says_by_how_much_in_both_languages():
    check = check_posting_caps(6, account_posts_24h=97, app_posts_24h=10, handle="bpbdpalu")
    assert check.exceeds and (check.account_excess, check.app_excess) == (3, 0)
    assert check.message_id.startswith("Utas ini (6 unggahan) melebihi batas akun @bpbdpalu: 97 dari 100")
    assert "kelebihan 3 unggahan" in check.message_id and "aplikasi" not in check.message_id
    assert check.message_en.startswith("This thread (6 posts) exceeds the account cap of @bpbdpalu")
    assert "3 posts over" in check.message_en


def test_app_cap_and_custom_limits():
    check = check_posting_caps(4, account_posts_24h=0, app_posts_24h=1666)
    assert (check.account_excess, check.app_excess) == (0, 3)
    assert "batas aplikasi: 1666 dari 1667" in check.message_id
    both = check_posting_caps(5, account_posts_24h=48, app_posts_24h=99, account_limit=50, app_limit=100)
    assert (both.account_excess, both.app_excess) == (3, 4)
    assert "batas akun" in both.message_id and "batas aplikasi" in both.message_id
