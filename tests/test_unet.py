"Failure modes and round trips of ddpm_lab.unet (small models, CPU, fast)."
import pytest, torch
from ddpm_lab.unet import ARCHS, COND_MODES, ContextUnet, UNet2D, build_model, n_params

SMALL = {'contextunet': dict(n_feat=16, img_size=32),
         'unet2d': dict(img_size=32, channels=(32, 64), attn=(False, True), groups=8)}

def inputs(b=2, size=32, ch=3, n_classes=24):
    c = torch.zeros(b, n_classes); c[0, 3] = 1
    return torch.randn(b, ch, size, size), torch.rand(b), c

def test_unknown_cond_lists_valid_modes():
    with pytest.raises(ValueError, match="unknown cond 'film'") as e: ContextUnet(cond='film')
    for mode in COND_MODES: assert mode in str(e.value)

def test_unknown_arch_lists_valid_archs():
    with pytest.raises(ValueError, match="unknown arch 'resnet'") as e: build_model('resnet')
    for arch in ARCHS: assert arch in str(e.value)

@pytest.mark.parametrize('kw, msg', [(dict(img_size=30), 'img_size divisible by 4'),
                                     (dict(n_feat=20), 'n_feat divisible by 8')])
def test_contextunet_bad_config(kw, msg):
    with pytest.raises(ValueError, match=msg): ContextUnet(**kw)

@pytest.mark.parametrize('kw, msg', [(dict(img_size=48), 'img_size divisible by 32'),
                                     (dict(channels=(32, 48), attn=(False, False)), 'divisible by groups=32'),
                                     (dict(attn=(True,)), 'attn needs one flag per level'),
                                     (dict(cross=(True,)), 'cross needs one flag per level')])
def test_unet2d_bad_config(kw, msg):
    with pytest.raises(ValueError, match=msg): UNet2D(**kw)

def test_label_tokens_round_trip_through_the_config():
    m = UNet2D(**SMALL['unet2d'], cross=(False, True)).eval()
    m2 = build_model(**m.config).eval()
    m2.load_state_dict(m.state_dict())   # strict: the same tokens and cross-attention layers
    x, t, c = inputs()
    assert torch.equal(m(x, t, c), m2(x, t, c))
    assert n_params(m) > n_params(UNet2D(**SMALL['unet2d']))

def test_contextunet_wrong_image_size():
    m = ContextUnet(**SMALL['contextunet'])
    with pytest.raises(ValueError, match='built for 32x32'): m(*inputs(size=64))

def test_unet2d_wrong_image_size():
    m = UNet2D(**SMALL['unet2d'])
    with pytest.raises(ValueError, match='divisible by 2'): m(*inputs(size=33))

@pytest.mark.parametrize('arch', list(ARCHS))
def test_wrong_channels_and_shapes(arch):
    m = build_model(arch, **SMALL[arch])
    x, t, c = inputs()
    with pytest.raises(ValueError, match=r'x must be \(B,3,H,W\)'): m(x[:, :1], t, c)
    with pytest.raises(ValueError, match=r't must be \(B,\)'): m(x, t[:1], c)
    with pytest.raises(ValueError, match=r'c must be \(B,n_classes\)=\(2,24\)'): m(x, t, c[:, :10])

@pytest.mark.parametrize('arch', list(ARCHS))
def test_state_dict_round_trip(arch, tmp_path):
    m = build_model(arch, **SMALL[arch])
    with torch.no_grad():
        for p in m.parameters(): p.add_(0.01 * torch.randn_like(p))  # not the init a fresh build would give
    m.train()(*inputs())  # move BatchNorm running statistics away from 0/1
    path = tmp_path / 'weights.pt'
    torch.save({'config': m.config, 'model': m.state_dict()}, path)
    saved = torch.load(path, weights_only=True)
    m2 = build_model(**saved['config'])
    m2.load_state_dict(saved['model'])
    x, t, c = inputs()
    with torch.no_grad(): torch.testing.assert_close(m2.eval()(x, t, c), m.eval()(x, t, c))
    assert n_params(m2) == n_params(m)

def test_state_dict_of_other_arch_refused():
    ctx, unet = build_model('contextunet', **SMALL['contextunet']), build_model('unet2d', **SMALL['unet2d'])
    with pytest.raises(RuntimeError, match='Missing key'): unet.load_state_dict(ctx.state_dict())

@pytest.mark.parametrize('cond', COND_MODES)
def test_contextunet_float64_and_batch1(cond):
    m = ContextUnet(**SMALL['contextunet'], cond=cond).double().eval()
    x, t, c = (a.double() for a in inputs(b=1))
    assert m(x, t, c).shape == (1, 3, 32, 32)

def test_patched_unet2d_round_trip_and_configs_without_patch(tmp_path):
    m = UNet2D(**SMALL['unet2d'], patch=2)
    torch.save({'config': m.config, 'model': m.state_dict()}, tmp_path / 'weights.pt')
    saved = torch.load(tmp_path / 'weights.pt', weights_only=True)
    m2 = build_model(**saved['config']); m2.load_state_dict(saved['model'])
    x, t, c = inputs()
    with torch.no_grad(): torch.testing.assert_close(m2.eval()(x, t, c), m.eval()(x, t, c))
    with pytest.raises(ValueError, match='patch 2 needs H and W divisible by 4'): m(*inputs(size=30))
    old = {k: v for k, v in m.config.items() if k != 'patch'}   # a config saved before the option existed
    assert build_model(**old).patch == 1
    with pytest.raises(RuntimeError, match='conv_in.weight'): build_model(**old).load_state_dict(saved['model'])
