"""A model kind outside the library: the book's model with an encoder that also reads the
label, q(z | x, y), while the decoder stays label-blind and the prior stays N(mu_y, I).

The true posterior p(z | x, y), proportional to p(z | y) p(x | z), depends on y; an
encoder that never sees y must place an image whose class it cannot tell between the
means of the classes it might be. The recipe search (``prior_recipes.py``) registers
this kind as ``"label_encoder_cvae"`` to measure what that costs."""

from cvae_lib.baselines import MODEL_KINDS, SohnCVAE
from cvae_lib.encoder import make_encoder
from cvae_lib.model import ConditionalVAE


class LabelEncoderCVAE(ConditionalVAE):
    """The book's model, its encoder given the one-hot label as extra image channels."""

    kind = "label_encoder_cvae"

    def __init__(self, config, *, seed: int = 0):
        super().__init__(config, seed=seed)
        self.encoder = make_encoder(config, seed=seed, extra_inputs=config.num_classes)

    posterior = SohnCVAE.posterior


MODEL_KINDS[LabelEncoderCVAE.kind] = LabelEncoderCVAE
