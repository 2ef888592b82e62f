"""Address validation and normalization (newsletter.addresses)."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from newsletter import addresses
from newsletter.errors import AddressError


def test_domain_is_lower_cased_and_local_part_keeps_its_case() -> None:
    address = addresses.parse("  Jane.Doe@Example.ORG ")
    assert address == addresses.Address("Jane.Doe@example.org", "jane.doe@example.org", "example.org")


def test_internationalized_domain_in_unicode_and_punycode_is_one_subscriber() -> None:
    unicode_form = addresses.parse("Jörg@Bücher.de")
    punycode_form = addresses.parse("jörg@xn--bcher-kva.de")
    assert unicode_form.email == "Jörg@bücher.de"
    assert unicode_form.key == punycode_form.key == "jörg@bücher.de"
    assert unicode_form.domain == "bücher.de"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("a@example.org\r\nBcc: x@example.org", "invalid address 'a@example.org\\r\\nBcc: x@example.org': it contains a line break (CR or LF)"),
        ("a@example.org\n", "invalid address 'a@example.org\\n': it contains a line break (CR or LF)"),
        ("", "invalid address '': it is empty"),
        ("   ", "invalid address '': it is empty"),
        ("no-at-sign", "invalid address 'no-at-sign': An email address must have an @-sign."),
        ("bad@", "invalid address 'bad@': There must be something after the @-sign."),
    ],
)
def test_invalid_addresses_name_the_value_and_the_problem(raw: str, message: str) -> None:
    with pytest.raises(AddressError) as caught:
        addresses.parse(raw)
    assert str(caught.value) == message


def test_no_dns_lookup_is_made_for_a_domain_that_does_not_exist() -> None:
    # .example is reserved and never resolves: a DNS check would reject it.
    assert addresses.normalize("reader@no-such-host.example.com") == "reader@no-such-host.example.com"


def test_domains_normalize_like_the_domain_of_an_address() -> None:
    assert addresses.normalize_domain("@Bücher.DE") == "bücher.de"
    assert addresses.normalize_domain("xn--bcher-kva.de") == addresses.parse("a@bücher.de").domain
    with pytest.raises(AddressError, match="^invalid domain 'bad_domain'"):
        addresses.normalize_domain("bad_domain")


_local = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-", min_size=1, max_size=20)
_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789äöüéñ", min_size=1, max_size=12)
_tld = st.sampled_from(["org", "com", "net", "de", "io", "ORG", "Com"])
_addresses = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _local,
    st.lists(_label, min_size=1, max_size=3),
    _tld,
)


@given(_addresses)
def test_normalizing_is_idempotent_and_the_key_ignores_case(raw: str) -> None:
    try:
        address = addresses.parse(raw)
    except AddressError:
        return  # e.g. a label the IDNA rules refuse: refused cleanly is all we ask
    assert addresses.parse(address.email) == address
    assert addresses.parse(raw.upper()).key == addresses.parse(raw.lower()).key == address.key
    assert addresses.parse(f"  {raw}\t").email == address.email


@given(st.text(max_size=60))
def test_any_text_is_an_address_or_an_address_error(raw: str) -> None:
    try:
        address = addresses.parse(raw)
    except AddressError as exc:
        assert "\n" not in str(exc).replace("\\n", "")
        return
    assert "\r" not in address.email and "\n" not in address.email
    assert address.key == address.email.lower()


@given(_addresses, st.sampled_from(["\r", "\n", "\r\n"]), st.integers(min_value=0, max_value=40))
def test_a_line_break_anywhere_is_refused(raw: str, line_break: str, position: int) -> None:
    position = min(position, len(raw))
    with pytest.raises(AddressError, match="line break"):
        addresses.parse(raw[:position] + line_break + raw[position:])


_ascii_candidates = st.text(alphabet="abcXYZ019.-_+!#'@=~`|{}%&*?^/", min_size=1, max_size=40) | st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    st.text(alphabet="abcXYZ019.-_+!#'=~", min_size=1, max_size=70),
    st.lists(st.text(alphabet="abcxyz019-", min_size=1, max_size=64), min_size=1, max_size=4),
    st.sampled_from(["org", "com", "test", "local", "invalid", "ORG", "123", "x"]),
)


@given(_ascii_candidates | _addresses)
def test_the_fast_path_agrees_with_email_validator(raw: str) -> None:
    """The cached common-case path accepts only what email-validator accepts, identically."""
    fast = addresses._parse_common(raw)
    if fast is None:
        return
    assert fast == addresses._parse_with_validator(raw)


def test_the_fast_path_takes_the_common_case_and_refuses_the_rest() -> None:
    assert addresses._parse_common("Ann.Lee+news@Example.ORG") == addresses.Address(
        "Ann.Lee+news@example.org", "ann.lee+news@example.org", "example.org"
    )
    for raw in ["a..b@example.org", ".a@example.org", "a@localhost", "a@example.invalid",
                '"q"@example.org', "ü@example.org", "a@bücher.de", "a@-x.org", "a" * 65 + "@x.org"]:
        assert addresses._parse_common(raw) is None, raw


def test_a_name_longer_than_the_store_keeps_is_refused_with_the_reason() -> None:
    from newsletter.addresses import NAME_MAX_CHARS, check_name

    assert check_name("A" * NAME_MAX_CHARS) == "A" * NAME_MAX_CHARS
    with pytest.raises(AddressError, match=r"it has 201 characters, at most 200 are kept; shorten it"):
        check_name("A" * (NAME_MAX_CHARS + 1))
