"""The Dagster resource reads the settings once, not on every call."""

from resources.platform import PlatformResource


def test_settings_are_read_once_and_every_client_is_built_from_them(tmp_path, monkeypatch):
    monkeypatch.setenv("CC_GITHUB_ORG", "first")
    platform = PlatformResource(data_dir=str(tmp_path))
    settings = platform.settings()
    monkeypatch.setenv("CC_GITHUB_ORG", "second")  # a later change does not reach a running resource
    assert platform.settings() is settings
    assert platform.github().org == "first"
    assert platform.lake().root == tmp_path / "lake"
