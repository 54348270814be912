from broadcast.dispatch import pacing
from broadcast.dispatch.pacing import LiveCheck


def test_reads_the_state_again_every_n_messages_and_stays_stopped():
    reads = []
    answers = iter([True, False])

    def still_live():
        reads.append(1)
        return next(answers)

    check = LiveCheck(still_live, every=3, every_s=3600)
    # The claim just checked: the first read comes before the 4th message, the next before the 7th.
    assert [check() for _ in range(6)] == [True] * 6
    assert len(reads) == 1
    assert [check() for _ in range(3)] == [False, False, False]
    assert len(reads) == 2 and check.stopped


def test_reads_the_state_again_after_the_interval_however_few_messages(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: now[0])
    reads = []
    check = LiveCheck(lambda: reads.append(1) or False, every=1000, every_s=1.0)
    assert check() and not reads
    now[0] += 1.5  # a paced send waited for tokens meanwhile
    assert not check() and reads == [1]
