from cc_events.keys import CorrelationKey, KeyExtractor

extract = KeyExtractor({"ENG", "OPS", "DATA"})


def keys(*texts, repo=None):
    return sorted(k.key for k in extract.all_keys(*texts, repo=repo))


def test_linear_keys_of_known_teams_only():
    assert keys("[ENG-123] Fix UTF-8 decoding in SHA-256 check (ISO-8601 dates, ABC-9)") == ["linear:ENG-123"]


def test_linear_keys_are_case_insensitive_in_branch_names():
    assert keys("alice/eng-42-fix-login") == ["linear:ENG-42"]
    assert keys("ops-7") == ["linear:OPS-7"]


def test_key_inside_a_longer_word_is_not_a_key():
    assert keys("PREENG-12 and ENG-12a and xENG-3") == []


def test_github_references_local_cross_repo_and_urls():
    found = keys(
        "Fixes #45, see acme/web#7 and https://github.com/acme/infra/pull/9 (not &#12; or issue#3)",
        repo="acme/api",
    )
    assert found == ["github:acme/api#45", "github:acme/infra#9", "github:acme/web#7"]


def test_local_reference_needs_a_repo():
    assert keys("Fixes #45") == []


def test_key_priorities():
    assert CorrelationKey.linear("eng-1").priority == 1
    assert CorrelationKey.github("Acme/API", 3).key == "github:acme/api#3"
    assert CorrelationKey.corr("run-1").priority == 3
