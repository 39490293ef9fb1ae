//! Checking and processing uploaded image bytes: the real format by magic bytes (never the
//! file name or the client's content type), then the header alone (dimensions and colour
//! type) against the limits before any pixel is decoded (no decompression bombs: a 500 KB PNG
//! can ask for 512 MiB), a full decode under an allocation cap to prove the file is an image,
//! and a thumbnail.
//!
//! Every decode of an image a user supplied goes through [`decode`] (uploads) or at least
//! [`probe`] (generation inputs, before a provider decodes them), and uploads decode one
//! [`decode_slot`] at a time per slot.

use std::{io::Cursor, sync::OnceLock};

use image::{ColorType, DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::config::Config;

/// What an accepted upload becomes.
#[derive(Debug)]
pub struct Processed {
    pub mime_type: &'static str,
    pub extension: &'static str,
    pub width: u32,
    pub height: u32,
    pub thumbnail: Vec<u8>,
    pub thumbnail_extension: &'static str,
}

/// The limits an image must fit before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest file (`EASEL_UPLOAD_MAX_BYTES`).
    pub max_bytes: usize,
    /// Largest width or height (`EASEL_UPLOAD_MAX_SIDE`).
    pub max_side: u32,
    /// Most memory the decoded pixels may take: width × height × bytes per pixel
    /// (`EASEL_UPLOAD_MAX_DECODED_BYTES`). Also the decoder's allocation cap.
    pub max_decoded_bytes: u64,
}

impl DecodeLimits {
    /// The configured limits.
    pub fn from_config(config: &Config) -> Self {
        DecodeLimits {
            max_bytes: config.upload_max_bytes,
            max_side: config.upload_max_side,
            max_decoded_bytes: config.upload_max_decoded_bytes,
        }
    }
}

/// What an image's header says, read without decoding a pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
    pub color: ColorType,
    /// width × height × bytes per pixel of the decoded image.
    pub decoded_bytes: u64,
}

/// Why an upload is refused (each becomes `BAD_USER_INPUT` on the `file` field).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    TooLarge {
        max_bytes: usize,
    },
    NotAnImage,
    TooBig {
        max_side: u32,
    },
    /// Decoding would take more memory than `max_decoded_bytes` (`needed` when the header
    /// told; a decoder that stops at its allocation cap does not say).
    TooManyBytes {
        max_decoded_bytes: u64,
        needed: Option<u64>,
    },
    Corrupt,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Empty => "the file is empty".into(),
            Refusal::TooLarge { max_bytes } => format!("the file is larger than {max_bytes} bytes"),
            Refusal::NotAnImage => "the file is not a PNG, JPEG or WebP image".into(),
            Refusal::TooBig { max_side } => {
                format!("the image is larger than {max_side} pixels on a side")
            }
            Refusal::TooManyBytes {
                max_decoded_bytes,
                needed,
            } => {
                let needed = needed.map_or_else(String::new, |n| format!(" (this one needs {n})"));
                format!(
                    "the image is too large to decode: width × height × bytes per pixel may be at most {max_decoded_bytes} bytes{needed}; use fewer pixels or 8 bits per channel"
                )
            }
            Refusal::Corrupt => "the image could not be decoded".into(),
        }
    }
}

/// The format of `bytes` by its magic numbers.
pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::WebP)
    } else {
        None
    }
}

/// `image`'s limits for one decode: every allocation of the decoder, the output buffer
/// included, counts against `max_decoded_bytes`.
fn image_limits(limits: &DecodeLimits) -> Limits {
    let mut l = Limits::default();
    l.max_alloc = Some(limits.max_decoded_bytes);
    l
}

fn refusal(e: ImageError, limits: &DecodeLimits) -> Refusal {
    match e {
        ImageError::Limits(_) => Refusal::TooManyBytes {
            max_decoded_bytes: limits.max_decoded_bytes,
            needed: None,
        },
        _ => Refusal::Corrupt,
    }
}

/// Reads the header and checks it against `limits`; returns the decoder, ready to decode.
fn open<'a>(
    bytes: &'a [u8],
    limits: &DecodeLimits,
) -> Result<(Header, impl ImageDecoder + 'a), Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(Refusal::TooLarge {
            max_bytes: limits.max_bytes,
        });
    }
    let format = sniff(bytes).ok_or(Refusal::NotAnImage)?;
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(image_limits(limits));
    let decoder = reader.into_decoder().map_err(|e| refusal(e, limits))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Refusal::Corrupt);
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(Refusal::TooBig {
            max_side: limits.max_side,
        });
    }
    let decoded_bytes = decoder.total_bytes();
    if decoded_bytes > limits.max_decoded_bytes {
        return Err(Refusal::TooManyBytes {
            max_decoded_bytes: limits.max_decoded_bytes,
            needed: Some(decoded_bytes),
        });
    }
    let header = Header {
        format,
        width,
        height,
        color: decoder.color_type(),
        decoded_bytes,
    };
    Ok((header, decoder))
}

/// Checks an image against `limits` from its header alone (cheap: no pixel is decoded).
pub fn probe(bytes: &[u8], limits: &DecodeLimits) -> Result<Header, Refusal> {
    open(bytes, limits).map(|(header, _)| header)
}

/// Decodes an image that fits `limits`; refuses before decoding when its header does not,
/// and the decoder cannot allocate more than `max_decoded_bytes` in all (output included).
/// CPU-bound: run it on a blocking thread, holding a [`decode_slot`].
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<(Header, DynamicImage), Refusal> {
    let (header, mut decoder) = open(bytes, limits)?;
    // The output buffer is allocated outside the decoder: what is left of the cap bounds the
    // decoder's own buffers, so the whole decode stays under `max_decoded_bytes`.
    let mut budget = image_limits(limits);
    budget.max_image_width = Some(limits.max_side);
    budget.max_image_height = Some(limits.max_side);
    budget
        .reserve(header.decoded_bytes)
        .map_err(|e| refusal(e, limits))?;
    decoder.set_limits(budget).map_err(|e| refusal(e, limits))?;
    let image = DynamicImage::from_decoder(decoder).map_err(|e| refusal(e, limits))?;
    Ok((header, image))
}

/// Waits for one of the process's `slots` decode slots (sized by the first caller: one
/// configuration per process). Hold the permit for the whole decode, resize and encode.
pub async fn decode_slot(slots: usize) -> SemaphorePermit<'static> {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS
        .get_or_init(|| Semaphore::new(slots.max(1)))
        .acquire()
        .await
        .expect("the decode semaphore is never closed")
}

/// The thumbnail of `image`: at most `side` pixels on its longest side (a smaller image keeps
/// its size: thumbnails never enlarge), PNG when the image has an alpha channel, JPEG
/// otherwise. Returns the bytes and their file extension. The one thumbnail maker, for uploads
/// and generation outputs alike (CPU-bound: run it on a blocking thread).
pub fn thumbnail(image: &DynamicImage, side: u32) -> Result<(Vec<u8>, &'static str), Refusal> {
    let thumb = if image.width() <= side && image.height() <= side {
        image.clone()
    } else {
        image.thumbnail(side, side)
    };
    let mut out = Vec::new();
    let extension = if thumb.color().has_alpha() {
        thumb
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|_| Refusal::Corrupt)?;
        "png"
    } else {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .map_err(|_| Refusal::Corrupt)?;
        "jpg"
    };
    Ok((out, extension))
}

/// The thumbnail of an encoded image the server made itself (a generation output), decoded
/// under `limits` like an upload.
pub fn thumbnail_of(
    bytes: &[u8],
    limits: &DecodeLimits,
    side: u32,
) -> Result<(Vec<u8>, &'static str), Refusal> {
    let (_, image) = decode(bytes, limits)?;
    thumbnail(&image, side)
}

/// Checks an upload and makes its thumbnail (CPU-bound: run it on a blocking thread).
pub fn process(
    bytes: &[u8],
    limits: &DecodeLimits,
    thumbnail_side: u32,
) -> Result<Processed, Refusal> {
    let (header, image) = decode(bytes, limits)?;
    let (thumbnail, thumbnail_extension) = thumbnail(&image, thumbnail_side)?;
    drop(image);
    let (mime_type, extension) = match header.format {
        ImageFormat::Png => ("image/png", "png"),
        ImageFormat::Jpeg => ("image/jpeg", "jpg"),
        _ => ("image/webp", "webp"),
    };
    Ok(Processed {
        mime_type,
        extension,
        width: header.width,
        height: header.height,
        thumbnail,
        thumbnail_extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Rgb, RgbImage, Rgba};

    fn encode(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    /// A 16-bit RGBA PNG of one colour: tiny file, 8 bytes per pixel once decoded.
    fn rgba16(w: u32, h: u32) -> Vec<u8> {
        let img = ImageBuffer::from_pixel(w, h, Rgba([40_000u16, 2, 3, 65_535]));
        let mut out = Vec::new();
        DynamicImage::ImageRgba16(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn limits(max_bytes: usize, max_side: u32, max_decoded_bytes: u64) -> DecodeLimits {
        DecodeLimits {
            max_bytes,
            max_side,
            max_decoded_bytes,
        }
    }

    #[test]
    fn real_images_pass_with_dimensions_and_thumbnail() {
        for (format, mime) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Jpeg, "image/jpeg"),
            (ImageFormat::WebP, "image/webp"),
        ] {
            let bytes = encode(format, 640, 480);
            let p = process(&bytes, &limits(10 << 20, 4096, 128 << 20), 256).unwrap();
            assert_eq!((p.mime_type, p.width, p.height), (mime, 640, 480));
            let thumb = image::load_from_memory(&p.thumbnail).unwrap();
            assert_eq!((thumb.width(), thumb.height()), (256, 192));
        }
    }

    #[test]
    fn thumbnails_never_enlarge() {
        let small = encode(ImageFormat::Png, 64, 48);
        let (thumb, ext) = thumbnail_of(&small, &limits(10 << 20, 4096, 128 << 20), 320).unwrap();
        let thumb = image::load_from_memory(&thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height(), ext), (64, 48, "jpg"));
        let big = encode(ImageFormat::Png, 1000, 500);
        let (thumb, _) = thumbnail_of(&big, &limits(10 << 20, 4096, 128 << 20), 320).unwrap();
        let thumb = image::load_from_memory(&thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 160));
    }

    #[test]
    fn fakes_and_extremes_are_refused() {
        let small = limits(1000, 10, 1 << 20);
        assert_eq!(process(b"", &small, 5).unwrap_err(), Refusal::Empty);
        assert_eq!(
            process(b"hello, I am text pretending", &small, 5).unwrap_err(),
            Refusal::NotAnImage
        );
        let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
        fake.extend_from_slice(b"but then only text follows");
        assert_eq!(process(&fake, &small, 5).unwrap_err(), Refusal::Corrupt);
        let big = encode(ImageFormat::Png, 300, 20);
        assert_eq!(
            process(&big, &limits(10 << 20, 256, 1 << 20), 64).unwrap_err(),
            Refusal::TooBig { max_side: 256 }
        );
        assert_eq!(
            process(&big, &limits(10, 4096, 1 << 20), 64).unwrap_err(),
            Refusal::TooLarge { max_bytes: 10 }
        );
    }

    #[test]
    fn decoded_bytes_are_bounded_from_the_header() {
        // 512 × 512 × 8 bytes = 2 MiB decoded, from a file of a few KB.
        let bomb = rgba16(512, 512);
        assert!(bomb.len() < 20_000, "{} bytes", bomb.len());
        let tight = limits(10 << 20, 8192, 1 << 20);
        let header = Header {
            format: ImageFormat::Png,
            width: 512,
            height: 512,
            color: ColorType::Rgba16,
            decoded_bytes: 2 << 20,
        };
        let refusal = Refusal::TooManyBytes {
            max_decoded_bytes: 1 << 20,
            needed: Some(2 << 20),
        };
        assert_eq!(probe(&bomb, &tight).unwrap_err(), refusal);
        assert_eq!(process(&bomb, &tight, 64).unwrap_err(), refusal);
        assert!(
            refusal.message().contains("1048576"),
            "{}",
            refusal.message()
        );
        // The same sides at 3 bytes per pixel fit: bytes per pixel count, not only sides.
        let rgb = encode(ImageFormat::Png, 512, 512);
        assert_eq!(probe(&rgb, &tight).unwrap().decoded_bytes, 512 * 512 * 3);
        assert!(process(&rgb, &tight, 64).is_ok());
        // Exactly at the limit is allowed.
        let exact = limits(10 << 20, 8192, 2 << 20);
        assert_eq!(probe(&bomb, &exact).unwrap(), header);
        let p = process(&bomb, &exact, 64).unwrap();
        assert_eq!(
            (p.width, p.height, p.thumbnail_extension),
            (512, 512, "png")
        );
    }
}
