"""Keys on real-world text: every case of key_corpus.yaml yields exactly its keys, none of its `not`."""

from pathlib import Path

import pytest
import yaml

from cc_events.keys import KeyExtractor, unique

CORPUS = yaml.safe_load((Path(__file__).parent / "key_corpus.yaml").read_text())
EXTRACT = KeyExtractor(CORPUS["teams"])


def test_the_corpus_is_well_formed():
    ids = [case["id"] for case in CORPUS["cases"]]
    assert len(ids) == len(set(ids))
    for case in CORPUS["cases"]:
        assert {"keys"} <= case.keys() <= {"id", "why", "repo", "branch", "title", "body", "text", "keys", "not"}
        assert not set(case["keys"]) & set(case.get("not", [])), case["id"]


@pytest.mark.parametrize("case", CORPUS["cases"], ids=lambda case: case["id"])
def test_case_yields_exactly_its_keys(case):
    texts = (case.get("title"), case.get("body"), case.get("text"))
    found = [k.key for k in unique(EXTRACT.all_keys(*texts, repo=case.get("repo", CORPUS["repo"]),
                                                    branch=case.get("branch")))]
    assert sorted(found) == sorted(case["keys"])
    assert not set(found) & set(case.get("not", []))
