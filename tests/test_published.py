"""transformers' own integration test for the published flaubert_base_cased, run on the real weights.

It runs wherever ``weights/flaubert_base_cased`` exists (``minflaubert download flaubert_base_cased``; see
weights/README.md) and skips elsewhere: no machine of this project reaches the model hub, so CI skips it too.
The ids end with 2, the pad index: the model masks that position, and the expected numbers include that.
"""
import numpy as np
import pytest

from conftest import REPO
from minflaubert.model import FlaubertModel

FOLDER = REPO / "weights" / "flaubert_base_cased"
IDS = [[0, 345, 232, 328, 740, 140, 1695, 69, 6078, 1588, 2]]
EXPECTED = [[-2.6251, -1.4298, -0.0227], [-2.8510, -1.6387, 0.2258], [-2.8114, -1.1832, -0.3066]]


@pytest.mark.skipif(not FOLDER.is_dir(), reason="weights/flaubert_base_cased not downloaded: "
                                                "run `minflaubert download flaubert_base_cased`")
@pytest.mark.parametrize("use_kernels", [True, False], ids=["kernels", "numpy"])
def test_flaubert_base_cased_integration(use_kernels):
    model = FlaubertModel.from_pretrained(FOLDER)
    model.use_kernels = use_kernels
    hidden = model(IDS).last_hidden_state
    assert hidden.shape == (1, 11, 768)
    np.testing.assert_allclose(hidden[0, :3, :3], EXPECTED, atol=1e-4)
