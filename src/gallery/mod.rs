//! Gallery: uploaded images, characters (seed 003) with likes, ratings and variants,
//! collections of characters, vendor albums of images, public galleries and the showcase feed.
//!
//! Privacy in one sentence: a private image, character, collection or album is seen by its
//! owner and admins only, wherever it would appear (root fields and nested fields alike).

pub mod graphql;
pub mod loaders;
pub mod model;
pub mod service;
pub mod upload;

use crate::db_enum;

db_enum! {
    /// The visual style of a character.
    pub enum StyleType {
        /// Japanese animation: clean lines, cel shading, expressive eyes.
        Anime => "anime",
        /// Photographic realism.
        Realistic => "realistic",
        /// Western cartoon: simple shapes, bold outlines, flat colours.
        Cartoon => "cartoon",
        /// Fantasy illustration: painterly, dramatic light.
        Fantasy => "fantasy",
        /// Neon-lit, high-tech, dystopian.
        Cyberpunk => "cyberpunk",
        /// Victorian machinery: brass, gears, steam.
        Steampunk => "steampunk",
        /// Few shapes and colours, plenty of empty space.
        Minimalist => "minimalist",
        /// Comic book: inked lines, halftones, panels.
        Comic => "comic",
        /// A head-and-shoulders portrait.
        Portrait => "portrait",
        /// Fine-art painting or drawing.
        Artistic => "artistic",
    }
}

db_enum! {
    /// Where a character's generation stands.
    pub enum CharacterStatus {
        /// Created; its generation job is queued (or it has no job yet).
        Pending => "pending",
        /// A worker is generating its images.
        Processing => "processing",
        /// Its images are ready (or it was created from existing images).
        Completed => "completed",
        /// Its generation job failed or timed out (the charge was refunded).
        Failed => "failed",
        /// Its owner cancelled the generation job (the charge was refunded).
        Cancelled => "cancelled",
    }
}

db_enum! {
    /// The licence under which a character may be reused.
    pub enum LicenseType {
        /// Personal use only; all rights stay with the owner.
        Standard => "standard",
        /// Others may use it commercially.
        Commercial => "commercial",
        /// Free to share and adapt with attribution (Creative Commons).
        CreativeCommons => "creative_commons",
    }
}

db_enum! {
    /// How a variant differs from its parent character.
    pub enum VariantType {
        /// Not a variant: the character as first made.
        Original => "original",
        /// The same character in another visual style.
        StyleTransfer => "style_transfer",
        /// The same character in another pose.
        PoseChange => "pose_change",
        /// The same character in other clothes.
        OutfitChange => "outfit_change",
        /// The same character with another facial expression.
        ExpressionChange => "expression_change",
    }
}

db_enum! {
    /// Where an image came from.
    pub enum ImageKind {
        /// Uploaded by a user.
        Upload => "upload",
        /// Produced by a generation job.
        Result => "result",
        /// Uploaded by a vendor for their albums.
        Vendor => "vendor",
    }
}
