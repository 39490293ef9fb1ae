//! Checking and processing uploaded image bytes: the real format by magic bytes (never the
//! file name or the client's content type), dimensions read from the header before any
//! decoding (no decompression bombs), a full decode to prove the file is an image, and a
//! thumbnail.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

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

/// Why an upload is refused (each becomes `BAD_USER_INPUT` on the `file` field).
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    Empty,
    TooLarge { max_bytes: usize },
    NotAnImage,
    TooBig { max_side: u32 },
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

/// Checks an upload and makes its thumbnail (CPU-bound: run it on a blocking thread).
pub fn process(
    bytes: &[u8],
    max_bytes: usize,
    max_side: u32,
    thumbnail_side: u32,
) -> Result<Processed, Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::Empty);
    }
    if bytes.len() > max_bytes {
        return Err(Refusal::TooLarge { max_bytes });
    }
    let format = sniff(bytes).ok_or(Refusal::NotAnImage)?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|_| Refusal::Corrupt)?;
    if width == 0 || height == 0 {
        return Err(Refusal::Corrupt);
    }
    if width > max_side || height > max_side {
        return Err(Refusal::TooBig { max_side });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(1 << 30);
    reader.limits(limits);
    let image = reader.decode().map_err(|_| Refusal::Corrupt)?;
    let thumb = image.thumbnail(thumbnail_side, thumbnail_side);
    let mut thumbnail = Vec::new();
    let thumbnail_extension = if thumb.color().has_alpha() {
        thumb
            .write_to(&mut Cursor::new(&mut thumbnail), ImageFormat::Png)
            .map_err(|_| Refusal::Corrupt)?;
        "png"
    } else {
        DynamicImage::ImageRgb8(thumb.to_rgb8())
            .write_to(&mut Cursor::new(&mut thumbnail), ImageFormat::Jpeg)
            .map_err(|_| Refusal::Corrupt)?;
        "jpg"
    };
    let (mime_type, extension) = match format {
        ImageFormat::Png => ("image/png", "png"),
        ImageFormat::Jpeg => ("image/jpeg", "jpg"),
        _ => ("image/webp", "webp"),
    };
    Ok(Processed {
        mime_type,
        extension,
        width,
        height,
        thumbnail,
        thumbnail_extension,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    fn encode(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn real_images_pass_with_dimensions_and_thumbnail() {
        for (format, mime) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Jpeg, "image/jpeg"),
            (ImageFormat::WebP, "image/webp"),
        ] {
            let bytes = encode(format, 640, 480);
            let p = process(&bytes, 10 << 20, 4096, 256).unwrap();
            assert_eq!((p.mime_type, p.width, p.height), (mime, 640, 480));
            let thumb = image::load_from_memory(&p.thumbnail).unwrap();
            assert_eq!((thumb.width(), thumb.height()), (256, 192));
        }
    }

    #[test]
    fn fakes_and_extremes_are_refused() {
        assert_eq!(process(b"", 100, 10, 5).unwrap_err(), Refusal::Empty);
        assert_eq!(
            process(b"hello, I am text pretending", 1000, 10, 5).unwrap_err(),
            Refusal::NotAnImage
        );
        let mut fake = b"\x89PNG\r\n\x1a\n".to_vec();
        fake.extend_from_slice(b"but then only text follows");
        assert_eq!(process(&fake, 1000, 10, 5).unwrap_err(), Refusal::Corrupt);
        let big = encode(ImageFormat::Png, 300, 20);
        assert_eq!(
            process(&big, 10 << 20, 256, 64).unwrap_err(),
            Refusal::TooBig { max_side: 256 }
        );
        assert_eq!(
            process(&big, 10, 4096, 64).unwrap_err(),
            Refusal::TooLarge { max_bytes: 10 }
        );
    }
}
