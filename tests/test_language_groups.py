"""The language groups table: packaged coverage, user files, errors, group means."""

from __future__ import annotations

import pytest

from polyir.errors import DataFormatError, PolyirError
from polyir.language_groups import group_means, load_language_groups, parse_language_groups
from polyir.languages import canonical_code, is_canonical

XQUAD_R = "ar de el en es hi ru th tr vi zh".split()
MLQA_R = "ar de en es hi vi zh".split()
MIRACL = "ar bn de en es fa fi fr hi id ja ko ru sw te th yo zh".split()
# the low-resource languages as the data folders write them (shared/data READMEs)
NTREX_LOW = "ibo kin lao mlg mya pus sin sna-Latn tir wol xho guj".split()
MAFAND = "amh hau ibo kin lug luo nya pcm sna swa tsn twi xho yor zul bam bbj ewe fon mos wol".split()
MASAKHANEWS = "amh eng fra hau ibo lin lug orm pcm run sna som swa tir xho yor".split()
AFRIQA = "bem fon hau ibo kin swa twi wol yor zul".split()


def test_packaged_table_covers_the_benchmark_languages():
    groups = load_language_groups()
    assert groups.columns == ("script", "resource")
    for code in {*XQUAD_R, *MLQA_R, *MIRACL}:
        assert code in groups.rows, code
    assert all(is_canonical(code) for code in groups.rows)  # stored as polyir writes codes
    assert {r["resource"] for r in groups.rows.values()} == {"high", "mid", "low"}
    assert groups.group("zh", "script") == "Han" and groups.group("ru", "script") == "Cyrillic"
    assert groups.group("qq", "script") == "unlisted"
    assert list(groups.groups(["sw", "en", "th", "qq"], "resource")) == ["high", "mid", "low", "unlisted"]
    with pytest.raises(PolyirError, match="no grouping column 'family'"):
        groups.group("en", "family")


def test_packaged_table_covers_the_low_resource_news_languages():
    groups = load_language_groups()
    for tag in {*NTREX_LOW, *MAFAND, *MASAKHANEWS, *AFRIQA}:
        code = canonical_code(tag)
        assert code in groups.rows, tag
        assert groups.group(code, "resource") in ("high", "mid", "low")
    african = {canonical_code(t) for t in (*MAFAND, *AFRIQA)} | {canonical_code(t) for t in MASAKHANEWS} - {"en", "fr"}
    assert {groups.group(c, "resource") for c in african} == {"low"}
    assert groups.name("pcm") == "Nigerian Pidgin" and groups.group("ti", "script") == "Ethiopic"
    assert groups.name("zh-hant") == "Chinese (Traditional)"  # unlisted: the standard name


def test_user_file_codes_in_any_standard_form(tmp_path):
    groups = parse_language_groups("code,name,script\neng,English,Latin\nsna-Latn,Shona,Latin\nzho-TW,Chinese,Hant\n")
    assert list(groups.rows) == ["en", "sn", "zh-hant"]


def test_user_file_with_its_own_column(tmp_path):
    path = tmp_path / "groups.csv"
    path.write_text("# mine\ncode,name,family\nen,English,Germanic\nde,German,Germanic\nes,Spanish,Romance\n",
                    encoding="utf-8")
    groups = load_language_groups(path)
    assert groups.columns == ("family",) and groups.source == str(path)
    assert groups.groups(["es", "de", "en"], "family") == {"Germanic": ["de", "en"], "Romance": ["es"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("lang,name,script\nen,English,Latin\n", "header must start with code,name"),
        ("code,name\nen,English\n", "header must start with code,name"),
        ("code,name,script\n", "no language rows"),
        ("code,name,script\nen,English\n", "line 2: 2 fields, the header has 3"),
        ("code,name,script\nen,English,Latin\nen,Anglais,Latin\n", "line 3: language 'en' is listed twice"),
        ("code,name,script\nen,English,\n", "line 2: empty script"),
        ("code,name,resource\nen,English,huge\n", "resource must be one of high, mid, low"),
        ("code,name,script,script\nen,English,Latin,Latin\n", "repeated column"),
        ("code,name,script\nen,English,Latin\nxx,Nowhere,Latin\n", r"line 3: unknown language code 'xx'"),
        ("code,name,script\nen,English,Latin\neng,English,Latin\n", r"line 3: language 'en' is listed twice \('eng' is"),
    ],
)
def test_bad_tables_say_what_and_where(text, message):
    with pytest.raises(DataFormatError, match=message):
        parse_language_groups(text, "g.csv")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(PolyirError, match="no such language groups file"):
        load_language_groups(tmp_path / "nope.csv")


def test_group_means():
    groups = parse_language_groups("code,name,script\nen,English,Latin\nde,German,Latin\nzh,Chinese,Han\n")
    vals = {("en", "en"): 0.9, ("de", "de"): 0.8, ("zh", "zh"): 0.7,
            ("en", "de"): 0.6, ("de", "en"): 0.5, ("en", "zh"): 0.4, ("zh", "en"): 0.3,
            ("de", "zh"): 0.2, ("zh", "de"): 0.1}
    pairs = [{"query": x, "candidate": y, "map": v} for (x, y), v in vals.items()]
    out = group_means(pairs, groups, "script")
    assert out["groups"] == {"Han": ["zh"], "Latin": ["de", "en"]}
    latin = out["per_group"]["Latin"]
    assert latin["mo"] == pytest.approx(0.85)
    assert latin["cr_out"] == pytest.approx((0.6 + 0.5 + 0.4 + 0.2) / 4)
    assert latin["cr_in"] == pytest.approx((0.6 + 0.5 + 0.3 + 0.1) / 4)
    assert out["cross"]["Latin"]["Latin"] == pytest.approx(0.55)
    assert out["cross"]["Han"]["Latin"] == pytest.approx(0.2)
    assert out["cross"]["Han"]["Han"] is None  # no pair of two different Han languages
