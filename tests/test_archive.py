"""Uploaded ImageFolder archives: a good zip or tar is unpacked into the datasets folder;
hostile or unusable ones are refused with the reason and leave nothing behind."""

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from nas.data import DatasetError, load_dataset
from nas.data.archive import ArchiveLimits, import_archive


def png(colour: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (12, 12), (colour, 255 - colour, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def good_members(prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}{label}/{index}.png": png(index * 20)
            for label in ("ants", "bees") for index in range(4)}


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None
              ) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            archive.addfile(info)
    return path


def everything_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def test_a_zip_of_class_folders_becomes_a_dataset(tmp_path):
    datasets = tmp_path / "datasets"
    imported = import_archive(write_zip(tmp_path / "up.zip", good_members()), datasets)
    assert imported.classes == ("ants", "bees") and imported.images == 8
    assert imported.path == datasets / imported.id
    data = load_dataset("imagefolder", imported.path, input_size=16)
    assert data.info.num_classes == 2


def test_a_tar_with_a_top_folder_and_a_train_split(tmp_path):
    archive = write_tar(tmp_path / "up.tar.gz", good_members("photos/train/"))
    imported = import_archive(archive, tmp_path / "datasets")
    assert imported.classes == ("ants", "bees")


@pytest.mark.parametrize(("members", "message"), [
    ({"../escape.png": png(1)} | good_members(), "points outside"),
    ({"/tmp/absolute.png": png(1)} | good_members(), "points outside"),
    ({"ants/../../escape.png": png(1)} | good_members(), "points outside"),
    (good_members() | {"ants/broken.png": os.urandom(300)}, "ants/broken.png is not an image"),
    ({"ants/0.png": png(1), "ants/1.png": png(2)}, "need at least 2"),
    # val/ is what a search validates on: it was unpacked unchecked, and each search failed
    (good_members("train/") | {"val/ants/0.png": os.urandom(300)},
     "val/ants/0.png is not an image"),
    (good_members("train/") | {"val/wasps/0.png": png(3)},
     r"val has class folders \['wasps'\] not in the training classes"),
])
def test_bad_zip_members_are_refused(tmp_path, members, message):
    datasets = tmp_path / "datasets"
    with pytest.raises(DatasetError, match=message):
        import_archive(write_zip(tmp_path / "up.zip", members), datasets)
    assert everything_under(datasets) == set()
    assert not (tmp_path / "escape.png").exists()


def test_a_symlink_in_a_tar_is_refused(tmp_path):
    archive = write_tar(tmp_path / "up.tar.gz", good_members(), links={"ants/x.png": "/etc/passwd"})
    with pytest.raises(DatasetError, match="is a link or a special file"):
        import_archive(archive, tmp_path / "datasets")
    assert everything_under(tmp_path / "datasets") == set()


def test_a_symlink_in_a_zip_is_refused(tmp_path):
    path = write_zip(tmp_path / "up.zip", good_members())
    with zipfile.ZipFile(path, "a") as archive:
        info = zipfile.ZipInfo("ants/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetError, match="is a link or a special file"):
        import_archive(path, tmp_path / "datasets")


def test_a_zip_bomb_is_refused_while_unpacking(tmp_path):
    path = tmp_path / "bomb.zip"
    with (zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
          archive.open("ants/zeros.png", "w", force_zip64=True) as member):
        for _ in range(1024):  # 1 GiB of zeros, about 1 MiB compressed
            member.write(bytes(1 << 20))
    limits = ArchiveLimits(max_file_bytes=4 << 30)  # so that the ratio is what stops it
    with pytest.raises(DatasetError, match="zip bomb"):
        import_archive(path, tmp_path / "datasets", limits)
    assert everything_under(tmp_path / "datasets") == set()


def test_too_many_files_are_refused(tmp_path):
    members = good_members() | {f"bees/extra{index}.png": png(3) for index in range(10)}
    with pytest.raises(DatasetError, match="more than 12 files"):
        import_archive(write_zip(tmp_path / "up.zip", members), tmp_path / "datasets",
                       ArchiveLimits(max_files=12))


def test_something_that_is_not_an_archive_is_refused(tmp_path):
    path = tmp_path / "up.zip"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(DatasetError, match="not a zip or tar archive"):
        import_archive(path, tmp_path / "datasets")


def test_a_member_name_that_is_not_utf8_is_refused(tmp_path):
    """Its name reached the listing as a lone surrogate: every `GET /api/v1/datasets` was a 500."""
    datasets = tmp_path / "datasets"
    archive = write_tar(tmp_path / "up.tar.gz", good_members() | {"w\udcffsps/0.png": png(3)})
    with pytest.raises(DatasetError, match="not UTF-8 text"):
        import_archive(archive, datasets)
    assert everything_under(datasets) == set()


def test_the_listing_shows_a_folder_name_that_is_not_utf8_escaped(tmp_path):
    from nas.service.datasets import listing

    datasets = tmp_path / "datasets"
    imported = import_archive(write_zip(tmp_path / "up.zip", good_members()), datasets)
    os.rename(imported.path / "bees", os.fsencode(imported.path) + b"/b\xffes")
    (found,) = listing(datasets)
    assert found.classes == ("ants", "b\\udcffes")
    found.classes[1].encode("utf-8")  # JSON can carry it
