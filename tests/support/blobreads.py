"""What the file blob storage reads: for tests that prove a part of a message is read as a
part (a seek and one read) and a stream in chunks, never the whole file at once."""

from __future__ import annotations


class FileReads:
    """The files the blob storage opens, with the offset of every seek and the size of
    every read they answer."""

    def __init__(self, storage, monkeypatch):
        self.reads: list[int] = []
        self.seeks: list[int] = []
        opened = storage.open
        counter = self

        class Counted:
            def __init__(self, inner):
                self.inner = inner

            def read(self, n=-1):
                data = self.inner.read(n)
                counter.reads.append(len(data))
                return data

            def seek(self, offset, *rest):
                counter.seeks.append(offset)
                return self.inner.seek(offset, *rest)

            def __getattr__(self, name):
                return getattr(self.inner, name)

        def counted_open(name, mode="rb"):
            fh = opened(name, mode)
            fh.file = Counted(fh.file)
            return fh

        monkeypatch.setattr(storage, "open", counted_open)
