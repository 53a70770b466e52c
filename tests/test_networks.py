"""The three networks against the reference TFP VAE design: layers, shapes, parameter counts.

The reference is TensorFlow Probability's "VAE with probabilistic layers" example
(encoder: five 5x5/7x7 leaky-ReLU convolutions + Dense -> MultivariateNormalTriL;
decoder: six transposed convolutions + a 5x5 convolution -> IndependentBernoulli).
It is rebuilt here from its layer definitions with TFP's own Keras layers, and the
parameter counts are also derived by hand, so the library is checked against two
independent computations rather than against numbers copied from its own output.
"""

import numpy as np
import pytest

from cvae_lib.backend import keras, tf, tfd, tfpl
from cvae_lib.config import ModelConfig
from cvae_lib.decoder import make_decoder, pixel_distribution
from cvae_lib.encoder import make_encoder, posterior_distribution, posterior_params_size
from cvae_lib.model import ConditionalVAE
from cvae_lib.prior import make_prior_network, prior_distribution

REFERENCE_COUNTS = {"prior_network": 54, "encoder": 57_893, "decoder": 80_481}


def leaky_relu_convs(layer, *specs):
    """One ``layer`` (a Keras convolution class) with the leaky ReLU for each
    ``(filters, kernel, strides, padding)`` in ``specs``, in order."""
    return [
        layer(
            filters,
            kernel,
            strides=strides,
            padding=padding,
            activation=tf.nn.leaky_relu,
        )
        for filters, kernel, strides, padding in specs
    ]


def reference_encoder(latent=2, base_depth=16, input_shape=(28, 28, 1)):
    """The encoder of TFP's probabilistic-layers VAE example, as published."""
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=input_shape),
            keras.layers.Lambda(lambda x: tf.cast(x, tf.float32) - 0.5),
            *leaky_relu_convs(
                keras.layers.Conv2D,
                (base_depth, 5, 1, "same"),
                (base_depth, 5, 2, "same"),
                (2 * base_depth, 5, 1, "same"),
                (2 * base_depth, 5, 2, "same"),
                (4 * latent, 7, 1, "valid"),
            ),
            keras.layers.Flatten(),
            keras.layers.Dense(
                tfpl.MultivariateNormalTriL.params_size(latent), activation=None
            ),
            tfpl.MultivariateNormalTriL(latent),
        ]
    )


def reference_decoder(latent=2, base_depth=16, input_shape=(28, 28, 1)):
    """The decoder of TFP's probabilistic-layers VAE example, as published."""
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=[latent]),
            keras.layers.Reshape([1, 1, latent]),
            *leaky_relu_convs(
                keras.layers.Conv2DTranspose,
                (2 * base_depth, 7, 1, "valid"),
                (2 * base_depth, 5, 1, "same"),
                (2 * base_depth, 5, 2, "same"),
                (base_depth, 5, 1, "same"),
                (base_depth, 5, 2, "same"),
                (base_depth, 5, 1, "same"),
            ),
            keras.layers.Conv2D(
                filters=1, kernel_size=5, strides=1, padding="same", activation=None
            ),
            keras.layers.Flatten(),
            tfpl.IndependentBernoulli(input_shape, tfd.Bernoulli.logits),
        ]
    )


def conv_params(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def dense_params(n_in, n_out):
    return n_in * n_out + n_out


def hand_counts(latent, depth, k=5, classes=10):
    """Parameter counts from the layer definitions, by arithmetic."""
    tril = latent + latent * (latent + 1) // 2
    encoder = (
        conv_params(k, 1, depth)
        + conv_params(k, depth, depth)
        + conv_params(k, depth, 2 * depth)
        + conv_params(k, 2 * depth, 2 * depth)
        + conv_params(7, 2 * depth, 4 * latent)
        + dense_params(4 * latent, tril)
    )
    decoder = (
        conv_params(7, latent, 2 * depth)
        + 2 * conv_params(k, 2 * depth, 2 * depth)
        + conv_params(k, 2 * depth, depth)
        + 2 * conv_params(k, depth, depth)
        + conv_params(k, depth, 1)
    )
    prior = dense_params(classes, 2 * latent) + dense_params(2 * latent, latent)
    return {"prior_network": prior, "encoder": encoder, "decoder": decoder}


@pytest.fixture(scope="module")
def reference_model():
    return ConditionalVAE(ModelConfig())


def test_parameter_counts_match_the_reference(reference_model):
    counts = {
        name: net.count_params() for name, net in reference_model.networks().items()
    }
    assert counts == hand_counts(2, 16) == REFERENCE_COUNTS
    assert reference_encoder().count_params() == counts["encoder"]
    assert reference_decoder().count_params() == counts["decoder"]


@pytest.mark.parametrize("latent, depth", [(3, 4), (8, 2)])
def test_parameter_counts_follow_the_config(latent, depth):
    model = ConditionalVAE(ModelConfig(latent_dim=latent, base_depth=depth))
    counts = {name: net.count_params() for name, net in model.networks().items()}
    assert counts == hand_counts(latent, depth)
    assert reference_encoder(latent, depth).count_params() == counts["encoder"]
    assert reference_decoder(latent, depth).count_params() == counts["decoder"]


def _conv_layout(network):
    """(kind, filters, kernel, strides, padding, activation) of every convolution.

    The decoder's last layer, :class:`~cvae_lib.decoder.PixelLogits`, counts as the
    ``Conv2D`` it computes (tested against it below).
    """
    from cvae_lib.decoder import PixelLogits

    return [
        (
            "Conv2D" if type(layer) is PixelLogits else type(layer).__name__,
            layer.filters,
            layer.kernel_size,
            layer.strides,
            layer.padding,
            getattr(layer.activation, "__name__", None),
        )
        for layer in network.layers
        if isinstance(layer, keras.layers.Conv2D)  # Conv2DTranspose is a subclass
    ]


def test_layer_layout_and_shapes_match_the_reference(reference_model):
    enc, dec = reference_model.encoder, reference_model.decoder
    ref_enc, ref_dec = reference_encoder(), reference_decoder()
    assert _conv_layout(enc) == _conv_layout(ref_enc)
    assert _conv_layout(dec) == _conv_layout(ref_dec)
    assert [w.shape for w in enc.get_weights()] == [
        w.shape for w in ref_enc.get_weights()
    ]
    assert [w.shape for w in dec.get_weights()] == [
        w.shape for w in ref_dec.get_weights()
    ]
    # every hidden layer's output shape, down to the reference's distribution layers
    assert [layer.output_shape for layer in enc.layers] == [
        layer.output_shape for layer in ref_enc.layers[:-1]
    ]
    assert [layer.output_shape for layer in dec.layers] == [
        layer.output_shape for layer in ref_dec.layers[:-2]
    ]
    assert [layer.output_shape[1:] for layer in enc.layers[1:6]] == [
        (28, 28, 16),
        (14, 14, 16),
        (14, 14, 32),
        (7, 7, 32),
        (1, 1, 8),
    ]
    assert [layer.output_shape[1:] for layer in dec.layers[1:]] == [
        (7, 7, 32),
        (7, 7, 32),
        (14, 14, 32),
        (14, 14, 16),
        (28, 28, 16),
        (28, 28, 16),
        (28, 28, 1),
    ]
    for conv in (
        layer
        for layer in list(enc.layers) + list(dec.layers)
        if isinstance(layer, keras.layers.Conv2D)
    ):
        expected = None if conv is dec.layers[-1] else "leaky_relu"
        assert getattr(conv.activation, "__name__", None) in (
            {expected} if expected else {"linear"}
        )


def test_encoder_centres_its_input(reference_model):
    enc = reference_model.encoder
    x = tf.constant(np.random.default_rng(0).random((2, 28, 28, 1)), tf.float32)
    np.testing.assert_allclose(enc.layers[0](x).numpy(), x.numpy() - 0.5, atol=1e-7)


def test_prior_network_is_two_linear_layers():
    config = ModelConfig(latent_dim=3)
    net = make_prior_network(config)
    hidden, mean = net.layers
    assert (hidden.units, mean.units) == (6, 3)
    assert (
        hidden.activation is keras.activations.linear
        and mean.activation is keras.activations.linear
    )
    (w1, b1), (w2, b2) = hidden.get_weights(), mean.get_weights()
    one_hot = np.eye(10, dtype=np.float32)
    np.testing.assert_allclose(
        net(one_hot).numpy(), (w1 + b1) @ w2 + b2, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("latent", [1, 2, 5])
def test_network_output_shapes(latent):
    config = ModelConfig(latent_dim=latent, base_depth=2)
    n = 3
    images = tf.zeros((n, 28, 28, 1))
    assert make_encoder(config)(images).shape == (n, posterior_params_size(latent))
    assert posterior_params_size(latent) == latent + latent * (latent + 1) // 2
    assert make_decoder(config)(tf.zeros((n, latent))).shape == (n, 28, 28, 1)
    assert make_prior_network(config)(tf.one_hot([0, 4, 9], 10)).shape == (n, latent)


def test_label_inputs_widen_only_the_first_layer():
    config = ModelConfig(base_depth=2)
    plain_enc, label_enc = make_encoder(config), make_encoder(config, extra_inputs=10)
    assert label_enc.input_shape == (None, 28, 28, 11)
    assert label_enc.count_params() - plain_enc.count_params() == 5 * 5 * 10 * 2
    plain_dec, label_dec = make_decoder(config), make_decoder(config, extra_inputs=10)
    assert label_dec.input_shape == (None, 12)
    assert label_dec.count_params() - plain_dec.count_params() == 7 * 7 * 10 * 4


def test_posterior_is_a_full_covariance_gaussian():
    latent, n = 3, 4
    params = tf.constant(
        np.random.default_rng(1).normal(size=(n, posterior_params_size(latent))) * 3,
        tf.float32,
    )
    q = posterior_distribution(params, latent)
    assert isinstance(q, tfd.MultivariateNormalTriL)
    assert q.event_shape == (latent,) and q.batch_shape == (n,)
    assert q.sample(seed=[1, 2]).shape == (n, latent)
    scale = q.scale_tril.numpy()
    np.testing.assert_array_equal(scale, np.tril(scale))  # lower triangular
    assert (np.diagonal(scale, axis1=1, axis2=2) > 0).all()
    cov = q.covariance().numpy()
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), atol=1e-5)
    assert (np.linalg.eigvalsh(cov) > 0).all()
    # off-diagonal entries are free: the covariance is not diagonal
    assert (
        np.abs(
            cov[:, np.triu_indices(latent, 1)[0], np.triu_indices(latent, 1)[1]]
        ).max()
        > 1e-3
    )


def test_posterior_scale_stays_positive_for_extreme_parameters():
    params = tf.constant([[0.0, 0.0, -80.0, 5.0, -80.0]])
    scale = posterior_distribution(params, 2).scale_tril.numpy()[0]
    assert (np.diag(scale) >= 1e-5).all()
    assert np.isfinite(
        posterior_distribution(params, 2).log_prob([[0.0, 0.0]]).numpy()
    ).all()


def test_posterior_layout_is_that_of_tfp_layers():
    latent = 3
    params = tf.constant(
        np.random.default_rng(2).normal(size=(5, posterior_params_size(latent))),
        tf.float32,
    )
    ours = posterior_distribution(params, latent)
    theirs = tfpl.MultivariateNormalTriL(latent)(params)
    np.testing.assert_allclose(ours.mean().numpy(), theirs.mean().numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        ours.covariance().numpy(), theirs.covariance().numpy(), rtol=1e-5, atol=1e-6
    )


def test_prior_is_unit_gaussian_at_the_class_mean():
    means = tf.constant([[1.0, -2.0], [0.5, 3.0]])
    p = prior_distribution(means)
    assert p.event_shape == (2,) and p.batch_shape == (2,)
    np.testing.assert_allclose(p.mean().numpy(), means.numpy())
    np.testing.assert_allclose(p.covariance().numpy(), np.stack([np.eye(2)] * 2))


def test_pixel_distribution_is_an_image_of_bernoullis():
    logits = tf.zeros((2, 28, 28, 1))
    dist = pixel_distribution(logits)
    assert dist.event_shape == (28, 28, 1) and dist.batch_shape == (2,)
    np.testing.assert_allclose(
        dist.log_prob(tf.ones((2, 28, 28, 1))).numpy(),
        [784 * np.log(0.5)] * 2,
        rtol=1e-6,
    )


@pytest.mark.parametrize("latent", [1, 2, 3])
def test_classes_start_with_distinct_means(latent):
    model = ConditionalVAE(ModelConfig(latent_dim=latent, base_depth=2))
    means = model.class_means(tf.range(10)).numpy()
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(10, 1)]
    assert gaps.min() > 1e-2, "two classes start at the same prior mean"


def _dilated(kernel, rate: int):
    """The kernel with ``rate - 1`` zeros between taps: TensorFlow's float64 CPU
    convolution has no gradient for dilation rates above 1."""
    for axis in (0, 1):
        size = kernel.shape[axis]
        spaced = tf.stack(
            [kernel] + [tf.zeros_like(kernel)] * (rate - 1), axis=axis + 1
        )
        shape = list(kernel.shape)
        shape[axis] = size * rate
        kernel = tf.gather(
            tf.reshape(spaced, shape), tf.range((size - 1) * rate + 1), axis=axis
        )
    return kernel


@pytest.mark.parametrize(
    "kernel, padding, dilation",
    [(5, "same", 1), (3, "same", 1), (4, "same", 1), (5, "valid", 1), (3, "same", 2)],
)
def test_pixel_logits_layer_is_conv2d_computed_another_way(kernel, padding, dilation):
    """PixelLogits (the decoder's last layer) gives Conv2D's outputs and gradients, also
    where it must fall back to Conv2D's own computation (even kernel, valid, dilated).

    Gradients are compared relative to each array's largest value, not element by
    element: an element-wise 1e-4 comparison of the two float32 kernel gradients
    failed for 5 of 40 random initialisations, in entries that are small differences
    of terms near 1,000 (summation order), while both layers stayed within 1.5e-6 of
    scale of the same gradients computed in float64. Both are also compared with that
    float64 computation. The weights and inputs are seeded so that a failure repeats."""
    from cvae_lib.decoder import PixelLogits

    fast = PixelLogits(1, kernel, 1, padding, dilation_rate=dilation)
    plain = keras.layers.Conv2D(
        1,
        kernel,
        1,
        padding,
        dilation_rate=dilation,
        kernel_initializer=keras.initializers.GlorotUniform(seed=0),
    )
    x = tf.random.stateless_normal([3, 28, 28, 16], seed=[1, 0])
    fast.build(x.shape)
    plain.build(x.shape)
    fast.set_weights([w + 0.1 for w in plain.get_weights()])
    plain.set_weights(fast.get_weights())
    kernel64 = tf.Variable(tf.cast(plain.kernel, tf.float64))
    x64 = tf.cast(x, tf.float64)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, x64])
        y_fast, y_plain = fast(x), plain(x)
        y64 = tf.nn.conv2d(
            x64, _dilated(kernel64, dilation), 1, padding.upper()
        ) + tf.cast(plain.bias, tf.float64)
        loss_fast, loss_plain, loss64 = (
            tf.reduce_sum(y**2) for y in (y_fast, y_plain, y64)
        )
    size = 28 if padding == "same" else 28 - kernel + 1
    assert y_fast.shape == y_plain.shape == (3, size, size, 1)
    np.testing.assert_allclose(y_fast.numpy(), y_plain.numpy(), atol=1e-5)
    grads_fast = tape.gradient(loss_fast, [x] + fast.trainable_variables)
    grads_plain = tape.gradient(loss_plain, [x] + plain.trainable_variables)
    for a, b in zip(grads_fast, grads_plain):  # relative to scale: see the docstring
        assert np.abs(a.numpy() - b.numpy()).max() <= 2e-5 * np.abs(b.numpy()).max()
    for truth, fast_grad, plain_grad in zip(
        tape.gradient(loss64, [x64, kernel64]), grads_fast, grads_plain
    ):
        truth = truth.numpy()
        for grad in (fast_grad, plain_grad):
            assert np.abs(grad.numpy() - truth).max() <= 1e-5 * np.abs(truth).max()
