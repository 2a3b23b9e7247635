"""The LLM-free baseline's look-up table, computed by hand."""

import numpy as np
import pytest

from progressive_sae.interp.baseline import LookupTable
from progressive_sae.interp.records import Window
from progressive_sae.interp.sampling import Bucket, LatentExamples


def _item(*windows: tuple[list[int], list[float]]) -> LatentExamples:
    train = tuple(Window(i, i, 0, np.array(t), np.array(a, dtype=np.float32))
                  for i, (t, a) in enumerate(windows))
    return LatentExamples(0, Bucket(0, 10), 0, 0.1, 10.0, train, (), ())


def test_the_table_prefers_the_bigram_then_the_token_then_zero():
    # Token 7 after 5 scores 10 (twice), after 6 scores 0; alone it averages 20/3.
    table = LookupTable.fit(_item(([5, 7, 6, 7], [0, 10, 0, 0]), ([5, 7], [0, 10])))
    assert table.token_means() == {5: 0.0, 6: 0.0, 7: pytest.approx(20 / 3)}
    # 5→7 seen (10); 6→7 seen (0); 9 never seen (0); 8→7 unseen pair → the token's mean;
    # the first token has no pair → the token's mean.
    assert table.predict(np.array([7, 5, 7, 6, 7, 9, 8, 7])) == pytest.approx(
        [20 / 3, 0, 10, 0, 0, 0, 0, 20 / 3])


def test_pairs_never_cross_windows_and_an_empty_table_predicts_zero():
    # Window 1 ends with 5 and window 2 starts with 7 (at 4): (5, 7) was never seen inside a
    # window, so 7 after 5 gets the token's mean (4 + 0) / 2, not the crossing pair's 4.
    table = LookupTable.fit(_item(([5], [0]), ([7], [4]), ([6, 7], [0, 0])))
    assert table.predict(np.array([5, 7])) == [0.0, 2.0]
    assert LookupTable.fit(_item()).predict(np.array([1, 2])) == [0.0, 0.0]
